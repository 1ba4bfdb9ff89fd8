"""Browser sessions for the admin pages: who is signed in, CSRF checks, cookies and redirects.

A page handler asks :func:`session_of` and gets either the session or the redirect to the
login form; a form handler asks :func:`signed_form`, which also checks the CSRF token.
Cookies are HttpOnly, SameSite=Strict, scoped to ``/admin`` and Secure when the admin URL is
https.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from job_ledger.web.auth import (
    FLASH_COOKIE,
    FLASH_MAX_AGE_S,
    SESSION_COOKIE,
    SESSION_MAX_AGE_S,
    LoginThrottle,
    Session,
    SessionKeys,
)
from job_ledger.web.templating import render_error_page

COOKIE_PATH = "/admin"
_LOCAL_ADMIN_PATH = re.compile(r"/admin(/[A-Za-z0-9/_-]*)?")


@dataclass(frozen=True)
class PageSettings:
    """What the pages need besides the WebContext: the password, keys, throttle, cookie mode."""

    password: str
    keys: SessionKeys
    throttle: LoginThrottle
    secure_cookies: bool


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


def session_of(request: Request, settings: PageSettings) -> Session | Response:
    """Return the signed-in session, or the redirect to the login form when there is none
    (no cookie, a forged one or an expired one)."""
    session = settings.keys.session(request.cookies.get(SESSION_COOKIE))
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
