"""The login form and logout: ``ADMIN_PASSWORD`` checked in constant time, then a session cookie."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from job_ledger.web.auth import SESSION_COOKIE, password_matches
from job_ledger.web.page_sessions import (
    PageSettings,
    forget_session,
    remember_session,
    safe_next,
    signed_form,
)
from job_ledger.web.templating import render_page

log = logging.getLogger(__name__)


def login_routes(settings: PageSettings) -> list[Route]:
    """Return ``/admin/login`` (GET form, POST check) and ``/admin/logout`` (POST)."""

    async def login_form(request: Request) -> Response:
        target = safe_next(request.query_params.get("next"))
        if settings.keys.session(request.cookies.get(SESSION_COOKIE)) is not None:
            return RedirectResponse(target, status_code=303)
        return await render_page("login.html", {"next": target, "error": None})

    async def login(request: Request) -> Response:
        client = request.client.host if request.client else "unknown"
        # Wait before looking at the guess, so a burst of guesses is slowed down as a whole.
        await settings.throttle.wait(client)
        async with request.form(max_files=0, max_fields=10) as form:
            given = form.get("password")
            target = safe_next(str(form.get("next") or ""))
        if isinstance(given, str) and password_matches(given, settings.password):
            settings.throttle.succeeded(client)
            _, cookie = settings.keys.new_session()
            response = RedirectResponse(target, status_code=303)
            remember_session(response, cookie, settings)
            log.info("admin signed in from %s", client)
            return response
        failures = settings.throttle.failed(client)
        log.warning("wrong admin password from %s (%d in a row)", client, failures)
        return await render_page(
            "login.html",
            {"next": target, "error": "Wrong password. Try again."},
            status_code=401,
        )

    async def logout(request: Request) -> Response:
        form = await signed_form(request, settings)
        if isinstance(form, Response):
            return form
        response = RedirectResponse("/admin/login", status_code=303)
        forget_session(response, settings)
        return response

    return [
        Route("/admin/login", login_form, methods=["GET"]),
        Route("/admin/login", login, methods=["POST"]),
        Route("/admin/logout", logout, methods=["POST"]),
    ]
