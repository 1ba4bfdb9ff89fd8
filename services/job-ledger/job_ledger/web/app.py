"""The ledger's web application: JSON API, admin pages, health, metrics and the OpenAPI document.

:func:`create_app` is the seam the composition root calls; it connects to nothing itself and
keeps no global state, so two apps (two tests) never share anything.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

import asyncpg
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from chassis.health import ReadinessCheck, health_routes
from chassis.local_time import UTC_ZONE
from contracts import RunRequested, utc_now
from job_ledger.credentials import ApiToken, Credentials
from job_ledger.proxies import ClientOrigin, Network
from job_ledger.web.api import api_routes
from job_ledger.web.auth import BearerAuth, SessionKeys
from job_ledger.web.context import WebContext
from job_ledger.web.errors import (
    ApiError,
    InternalErrors,
    JsonResponse,
    api_error_handler,
    error_response,
    http_exception_message,
)
from job_ledger.web.openapi import openapi_document
from job_ledger.web.page_sessions import PageSessions, PageSettings
from job_ledger.web.pages import page_routes
from job_ledger.web.templating import render_error_page
from job_ledger.web.throttle import GuessThrottle


def create_app(
    *,
    pool: asyncpg.Pool,
    admin_password: str,
    request_run: Callable[[RunRequested], Awaitable[None]],
    readiness: Mapping[str, ReadinessCheck],
    session_secret: str,
    admin_base_url: str,
    job_name: str,
    job_schedule: str,
    clock: Callable[[], datetime] = utc_now,
    admin_timezone: ZoneInfo = UTC_ZONE,
    api_tokens: tuple[ApiToken, ...] = (),
    trusted_proxies: tuple[Network, ...] = (),
) -> Starlette:
    """Return the app serving ``/api/admin/...``, ``/admin/...``, health, metrics, OpenAPI.

    ``pool`` must have the ledger schema on its search_path; ``request_run`` publishes a
    RunRequested and returns once the broker confirmed it; ``job_name`` is the job the
    buttons (and the API without a jobName) ask to run, ``job_schedule`` its cron expression
    (the history page shows its next slot), ``admin_timezone`` the zone the pages show
    moments in (the API answers UTC whatever it is). ``api_tokens`` are Bearer tokens besides
    the password; ``trusted_proxies`` the proxies whose forwarded headers are believed.
    Raises ``ValueError`` for an empty ``admin_password`` or ``session_secret``: the service
    must not start open.
    """
    pages = _page_settings(
        pool, clock, admin_password, session_secret, admin_base_url, api_tokens, trusted_proxies
    )
    ctx = WebContext(
        pool=pool,
        request_run=request_run,
        clock=clock,
        job_name=job_name,
        job_schedule=job_schedule,
        zone=admin_timezone,
    )

    async def openapi(_: Request) -> Response:
        return JsonResponse(openapi_document())

    routes: list[BaseRoute] = [
        *health_routes(readiness),
        Route("/openapi.json", openapi, methods=["GET"]),
        Mount(
            "/api",
            routes=api_routes(ctx),
            middleware=[_bearer_auth(pages)],
        ),
        *page_routes(ctx, pages),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(InternalErrors), Middleware(PageSessions, settings=pages)],
        exception_handlers={ApiError: api_error_handler, HTTPException: _http_exception},
    )


def _page_settings(
    pool: asyncpg.Pool,
    clock: Callable[[], datetime],
    admin_password: str,
    session_secret: str,
    admin_base_url: str,
    api_tokens: tuple[ApiToken, ...],
    trusted_proxies: tuple[Network, ...],
) -> PageSettings:
    """Who may sign in and how sessions are kept; raises ``ValueError`` for an empty secret."""
    if not admin_password:
        raise ValueError("admin_password must not be empty")
    if not session_secret:
        raise ValueError("session_secret must not be empty")
    return PageSettings(
        Credentials(admin_password, api_tokens),
        SessionKeys(session_secret, clock),
        GuessThrottle(),
        ClientOrigin(trusted_proxies),
        pool,
        clock,
        secure_cookies=admin_base_url.lower().startswith("https://"),
    )


def _bearer_auth(pages: PageSettings) -> Middleware:
    """The API's Bearer check, sharing the pages' credentials, throttle and client origin."""
    return Middleware(
        BearerAuth, credentials=pages.credentials, throttle=pages.throttle, origin=pages.origin
    )


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)  # noqa: S101 registered for HTTPException only
    message = http_exception_message(exc)
    path = request.url.path
    if path == "/admin" or path.startswith("/admin/"):
        return await render_error_page(exc.status_code, message)
    return error_response(exc.status_code, message, dict(exc.headers or {}))
