"""Browser sessions for the admin pages: who is signed in, CSRF checks, cookies and redirects.

:class:`PageSessions` (middleware) finds the session of each ``/admin`` request: a signed
cookie whose session is still open on the server (:mod:`job_ledger.web.session_store`). A
page handler asks :func:`session_of` and gets either that session or the redirect to the
login form; a form handler asks :func:`signed_form`, which also checks the CSRF token.
Cookies are HttpOnly, SameSite=Strict, scoped to ``/admin``, and Secure when the admin URL is
https or the browser reached the pages over https (directly, or as a trusted proxy says).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

import asyncpg
from starlette.datastructures import FormData, MutableHeaders
from starlette.requests import HTTPConnection, Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from job_ledger.credentials import Credentials
from job_ledger.proxies import ClientOrigin
from job_ledger.web.auth import (
    FLASH_COOKIE,
    FLASH_MAX_AGE_S,
    SESSION_COOKIE,
    SESSION_MAX_AGE_S,
    Session,
    SessionKeys,
)
from job_ledger.web.session_store import session_alive
from job_ledger.web.templating import render_error_page
from job_ledger.web.throttle import GuessThrottle

COOKIE_PATH = "/admin"
_LOCAL_ADMIN_PATH = re.compile(r"/admin(/[A-Za-z0-9/_-]*)?")
_STATE_KEY = "admin_session"


@dataclass(frozen=True)
class PageSettings:
    """What the pages need besides the WebContext: credentials, keys, the guessing throttle,
    who the client is, where sessions are kept, and whether cookies are always Secure."""

    credentials: Credentials
    keys: SessionKeys
    throttle: GuessThrottle
    origin: ClientOrigin
    pool: asyncpg.Pool
    clock: Callable[[], datetime]
    secure_cookies: bool


class PageSessions:
    """ASGI middleware for ``/admin``: finds the request's open session (None: signed out) for
    :func:`session_of`, and marks every cookie it sets Secure when the request came over https.
    """

    def __init__(self, app: ASGIApp, settings: PageSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/admin" or path.startswith("/admin/")):
            await self.app(scope, receive, send)
            return
        cookie = HTTPConnection(scope).cookies.get(SESSION_COOKIE)
        scope.setdefault("state", {})[_STATE_KEY] = await self._open_session(cookie)
        if self.settings.secure_cookies or not self.settings.origin.is_https(scope):
            await self.app(scope, receive, send)
            return

        async def send_secure(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                cookies = headers.getlist("set-cookie")
                del headers["set-cookie"]
                for value in cookies:
                    secure = "secure" in value.lower().replace(" ", "").split(";")
                    headers.append("set-cookie", value if secure else f"{value}; Secure")
            await send(message)

        await self.app(scope, receive, send_secure)

    async def _open_session(self, cookie: str | None) -> Session | None:
        session = self.settings.keys.session(cookie)
        if session is None:
            return None
        alive = await session_alive(self.settings.pool, session.sid, self.settings.clock())
        return session if alive else None


class CsrfRefused(Exception):
    """A form arrived without the session's CSRF token; answered with a 403 page."""


def safe_next(raw: str | None) -> str:
    """Return ``raw`` if it is a local admin path, else ``/admin/jobs`` (no open redirect)."""
    if raw and _LOCAL_ADMIN_PATH.fullmatch(raw) and raw != "/admin/login":
        return raw
    return "/admin/jobs"


def to_login(request: Request, settings: PageSettings) -> Response:
    """Return the redirect to the login form, remembering where the browser wanted to go."""
    target = safe_next(request.url.path if request.method == "GET" else None)
    response = RedirectResponse(f"/admin/login?next={quote(target, safe='/')}", status_code=303)
    if SESSION_COOKIE in request.cookies:
        forget_session(response, settings)
    return response


def open_session(request: Request) -> Session | None:
    """The session :class:`PageSessions` found for ``request``, None when signed out."""
    session = request.scope.get("state", {}).get(_STATE_KEY)
    return session if isinstance(session, Session) else None


def session_of(request: Request, settings: PageSettings) -> Session | Response:
    """Return the signed-in session, or the redirect to the login form when there is none
    (no cookie, a forged one, an expired one, or one whose session has ended)."""
    session = open_session(request)
    return session if session is not None else to_login(request, settings)


def check_csrf(form: FormData, session: Session, settings: PageSettings) -> None:
    """Raise :class:`CsrfRefused` unless the form carries the session's CSRF token."""
    token = form.get("csrf_token")
    if not settings.keys.csrf_valid(session, token if isinstance(token, str) else None):
        raise CsrfRefused


async def csrf_refused_page() -> Response:
    return await render_error_page(
        403, "This form was not sent from a page of this session. Reload the page and try again."
    )


async def signed_form(request: Request, settings: PageSettings) -> FormData | Response:
    """Return the POSTed form of a signed-in admin that carries the session's CSRF token, or
    the response that refuses it (the login redirect, or the 403 page)."""
    session = session_of(request, settings)
    if isinstance(session, Response):
        return session
    # No files are accepted, so the form outlives the context (which only closes uploads).
    async with request.form(max_files=0, max_fields=10) as form:
        try:
            check_csrf(form, session, settings)
        except CsrfRefused:
            return await csrf_refused_page()
        return form


def remember_session(response: Response, cookie: str, settings: PageSettings) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=SESSION_MAX_AGE_S,
        path=COOKIE_PATH,
        secure=settings.secure_cookies,
        httponly=True,
        samesite="strict",
    )


def forget_session(response: Response, settings: PageSettings) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        path=COOKIE_PATH,
        secure=settings.secure_cookies,
        httponly=True,
        samesite="strict",
    )


def redirect_with_flash(url: str, message: str, level: str, settings: PageSettings) -> Response:
    """Return a 303 to ``url`` carrying ``message`` to the page it lands on (post-redirect-get)."""
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        FLASH_COOKIE,
        settings.keys.flash(message, level),
        max_age=FLASH_MAX_AGE_S,
        path=COOKIE_PATH,
        secure=settings.secure_cookies,
        httponly=True,
        samesite="strict",
    )
    return response


def take_flash(request: Request, settings: PageSettings) -> tuple[str, str] | None:
    """Return the flash ``(message, level)`` the request carries, if any and genuine."""
    return settings.keys.read_flash(request.cookies.get(FLASH_COOKIE))


def clear_flash(request: Request, response: Response, settings: PageSettings) -> None:
    if FLASH_COOKIE in request.cookies:
        response.delete_cookie(
            FLASH_COOKIE,
            path=COOKIE_PATH,
            secure=settings.secure_cookies,
            httponly=True,
            samesite="strict",
        )
