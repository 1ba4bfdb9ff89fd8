"""The login form, logout and "log out everywhere".

A login checks ``ADMIN_PASSWORD`` in constant time once the client is within its guessing
budget (:class:`job_ledger.web.throttle.GuessThrottle`, shared with the API), then opens a
session on the server and sets its cookie. Logging out ends that session on the server;
logging out everywhere ends every session, this one included.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from job_ledger.web.auth import SESSION_MAX_AGE_S, log_failure, retry_after
from job_ledger.web.page_sessions import (
    PageSettings,
    forget_session,
    open_session,
    remember_session,
    safe_next,
    signed_form,
    to_login,
)
from job_ledger.web.session_store import end_all_sessions, end_session
from job_ledger.web.session_store import open_session as record_session
from job_ledger.web.templating import render_error_page, render_page

log = logging.getLogger(__name__)


class SignIn:
    """The endpoints of signing in and out, over the pages' :class:`PageSettings`."""

    def __init__(self, settings: PageSettings) -> None:
        self.settings = settings

    async def login_form(self, request: Request) -> Response:
        target = safe_next(request.query_params.get("next"))
        if open_session(request) is not None:
            return RedirectResponse(target, status_code=303)
        return await render_page("login.html", {"next": target, "error": None})

    async def login(self, request: Request) -> Response:
        settings = self.settings
        client = settings.origin.address(request.scope)
        wait_s = settings.throttle.refusal(client)
        if wait_s is not None:
            page = await render_error_page(
                429, f"Too many failed attempts. Try again in {wait_s} seconds."
            )
            page.headers.update(retry_after(wait_s))
            return page
        # Counted as failed until proven right: guesses sent together are all counted
        # before the first one is read, so none slips past the budget.
        failures = settings.throttle.failed(client)
        async with request.form(max_files=0, max_fields=10) as form:
            given = form.get("password")
            target = safe_next(str(form.get("next") or ""))
        if isinstance(given, str) and settings.credentials.password_matches(given):
            settings.throttle.succeeded(client)
            session, cookie = settings.keys.new_session()
            lifetime = timedelta(seconds=SESSION_MAX_AGE_S)
            await record_session(settings.pool, session.sid, settings.clock(), lifetime, client)
            response = RedirectResponse(target, status_code=303)
            remember_session(response, cookie, settings)
            log.info("admin signed in from %s", client)
            return response
        log_failure("wrong admin password", client, request.scope, failures, settings.throttle)
        return await render_page(
            "login.html",
            {"next": target, "error": "Wrong password. Try again."},
            status_code=401,
        )

    async def logout(self, request: Request) -> Response:
        form = await signed_form(request, self.settings)
        if isinstance(form, Response):
            return form
        session = open_session(request)
        if session is not None:
            await end_session(self.settings.pool, session.sid)
        response = RedirectResponse("/admin/login", status_code=303)
        forget_session(response, self.settings)
        return response

    async def logout_everywhere(self, request: Request) -> Response:
        form = await signed_form(request, self.settings)
        if isinstance(form, Response):
            return form
        ended = await end_all_sessions(self.settings.pool)
        log.warning(
            "admin at %s logged out everywhere: ended %d session(s)",
            self.settings.origin.address(request.scope),
            ended,
        )
        return to_login(request, self.settings)


def login_routes(settings: PageSettings) -> list[Route]:
    """Return ``/admin/login`` (GET form, POST check), ``/admin/logout`` and
    ``/admin/logout-everywhere`` (POSTs with the session's CSRF token)."""
    sign_in = SignIn(settings)
    return [
        Route("/admin/login", sign_in.login_form, methods=["GET"]),
        Route("/admin/login", sign_in.login, methods=["POST"]),
        Route("/admin/logout", sign_in.logout, methods=["POST"]),
        Route("/admin/logout-everywhere", sign_in.logout_everywhere, methods=["POST"]),
    ]
