"""One error shape for the JSON API: ``{"error": {"message", "code", "statusCode"}}``.

Every failure of an ``/api`` route leaves in that shape: a refusal the code raised
(:class:`ApiError`), a route or method the router does not know (starlette's HTTPException),
and anything unexpected (:class:`InternalErrors`, which logs it and leaks nothing).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chassis.retry import TRANSIENT_DATABASE_ERRORS
from job_ledger.web.templating import render_error_page

log = logging.getLogger(__name__)

CODES: dict[int, str] = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}

# Postgres or the network under it went away (a restart, say): the request may succeed later,
# so 503, not 500. The same errors every service retries a transaction on.
_UNAVAILABLE = TRANSIENT_DATABASE_ERRORS


class JsonResponse(Response):
    """A JSON response encoded by orjson (UUIDs and datetimes must be formatted beforehand)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class ApiError(Exception):
    """A request the API refuses on purpose; becomes the error shape with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_body(status: int, message: str) -> dict[str, Any]:
    """Return the error shape for ``status`` (code from :data:`CODES`, else ``INTERNAL``)."""
    return {
        "error": {"message": message, "code": CODES.get(status, "INTERNAL"), "statusCode": status}
    }


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> JsonResponse:
    return JsonResponse(error_body(status, message), status_code=status, headers=headers)


async def api_error_handler(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)  # noqa: S101 registered for ApiError only
    return error_response(exc.status, exc.message)


def http_exception_message(exc: HTTPException) -> str:
    if exc.status_code == 404:
        return "Not found"
    if exc.status_code == 405:
        return "Method not allowed"
    return str(exc.detail)


class InternalErrors:
    """ASGI middleware: an unexpected exception becomes a 500 (503 when Postgres is down).

    Starlette's own handler for ``Exception`` re-raises after answering; this one logs the
    traceback once and answers in the error shape (an HTML page under ``/admin``), so the
    client never sees internals. When the response had already started it re-raises: the
    server can only close the connection then.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception as exc:
            if started:
                raise
            unavailable = isinstance(exc, _UNAVAILABLE)
            status = 503 if unavailable else 500
            log.exception("%s %s failed with %s", scope["method"], scope["path"], status)
            message = (
                "The database is unavailable; try again shortly"
                if unavailable
                else "Internal error"
            )
            response = await _error_for_path(scope["path"], status, message)
            await response(scope, receive, send)


async def _error_for_path(path: str, status: int, message: str) -> Response:
    if path == "/admin" or path.startswith("/admin/"):
        try:
            return await render_error_page(status, message)
        except Exception:
            log.exception("the error page itself failed to render")
            return Response(message, status_code=status, media_type="text/plain")
    return error_response(status, message)
