"""What the API answers when a handler raises: 503 for a database that is away (a restart
raises several kinds of error), 500 for anything else, always in the error shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message

from job_ledger.web.errors import InternalErrors


def _app_raising(exc: BaseException) -> Starlette:
    """An app whose route raises ``exc``, with the middleware placed as the ledger's app does."""

    async def handler(request: Request) -> Response:
        raise exc

    return Starlette(
        routes=[Route("/api/admin/job-logs", handler)], middleware=[Middleware(InternalErrors)]
    )


@dataclass
class Answer:
    status_code: int
    text: str

    def json(self) -> Any:
        return orjson.loads(self.text)


async def _get(app: Starlette) -> Answer:
    """Call the ASGI app as a server would, with one GET, and collect its answer."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/api/admin/job-logs",
        "raw_path": b"/api/admin/job-logs",
        "query_string": b"",
        "headers": [(b"host", b"ledger")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return Answer(status, body.decode())


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.InternalClientError("cannot switch to state 15"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError(),
    ],
    ids=lambda exc: type(exc).__name__,
)
async def test_a_database_that_is_away_is_a_503(exc: BaseException) -> None:
    response = await _get(_app_raising(exc))
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "UNAVAILABLE"
    assert "try again" in response.json()["error"]["message"]


async def test_a_bug_is_a_500_without_its_internals() -> None:
    response = await _get(_app_raising(KeyError("secret_column")))
    assert response.status_code == 500
    assert "secret_column" not in response.text
    assert response.json()["error"]["message"] == "Internal error"
