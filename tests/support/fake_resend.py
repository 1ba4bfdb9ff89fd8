"""A loopback Resend API that records every request and answers as a test scripts it.

:class:`FakeProvider` is the shared part (also used by the fake Slack webhook): a real
aiohttp.web server on 127.0.0.1, port 0, that keeps each request's method, path, headers and
JSON body, and answers from a script of :class:`Reply` values (one per request, in order),
then with its default. A ``hang`` reply never answers until the server closes; a ``drop``
cuts the connection.

:class:`FakeResend` serves ``POST /emails`` like https://resend.com/docs/api-reference/emails:
``{"id": …}`` on success, ``{"statusCode", "message", "name"}`` on error, and the first
answer again for a repeated ``Idempotency-Key``.
"""

from __future__ import annotations

import abc
import asyncio
import itertools
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from tests.support.broker import eventually


@dataclass(frozen=True)
class Reply:
    """One scripted answer: a status with a JSON or text body and headers, a hang (no answer
    until the server closes) or a drop (the connection is cut without an answer)."""

    status: int = 200
    json: Any = None
    text: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False
    drop: bool = False


@dataclass(frozen=True)
class Recorded:
    """What the fake received in one request."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any
    at: float

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


class FakeProvider(abc.ABC):
    """The recording, scriptable loopback server; subclasses answer in their provider's way."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._script: list[Reply] = []
        self._released = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with ``replies``, in order, then with the default again."""
        self._script.extend(replies)

    @abc.abstractmethod
    def routes(self) -> list[web.RouteDef]:
        """The provider's endpoints."""

    @abc.abstractmethod
    async def default_reply(self, request: Recorded) -> web.StreamResponse:
        """The answer when no scripted reply is left."""

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.add_routes(self.routes())
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._released.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        recorded = Recorded(
            request.method,
            request.path,
            dict(request.headers),
            body,
            asyncio.get_running_loop().time(),
        )
        self.requests.append(recorded)
        if self._script:
            reply = self._script.pop(0)
            if reply.hang:
                await self._released.wait()
                raise web.HTTPServiceUnavailable()
            if reply.drop:
                assert request.transport is not None
                request.transport.abort()
                return web.Response(status=500)
            if reply.text is not None:
                return web.Response(status=reply.status, text=reply.text, headers=reply.headers)
            return web.json_response(reply.json, status=reply.status, headers=reply.headers)
        return await self.default_reply(recorded)

    async def wait_for_requests(self, count: int, timeout_s: float = 15.0) -> list[Recorded]:
        """Return the requests once at least ``count`` arrived; AssertionError otherwise."""

        async def probe() -> int:
            return len(self.requests)

        await eventually(probe, lambda n: n >= count, timeout_s=timeout_s, interval_s=0.02)
        return list(self.requests)


def resend_error(status: int, name: str, message: str, **headers: str) -> Reply:
    """A Resend error answer, as its API writes them."""
    return Reply(status, {"statusCode": status, "message": message, "name": name}, None, headers)


class FakeResend(FakeProvider):
    """``POST /emails`` with a bearer key; remembers idempotency keys like Resend does."""

    def __init__(self, api_key: str = "re_test_key") -> None:
        super().__init__()
        self.api_key = api_key
        self._ids = itertools.count(1)
        self._by_key: dict[str, str] = {}

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/emails", self._handle)]

    @property
    def emails(self) -> list[dict[str, Any]]:
        """The JSON bodies of every request received."""
        return [r.json for r in self.requests]

    async def default_reply(self, request: Recorded) -> web.StreamResponse:
        if request.header("Authorization") != f"Bearer {self.api_key}":
            return web.json_response(
                {"statusCode": 401, "message": "API key is invalid", "name": "invalid_api_key"},
                status=401,
            )
        key = request.header("Idempotency-Key")
        if key is not None and key in self._by_key:
            return web.json_response({"id": self._by_key[key]})
        email_id = f"email-{next(self._ids)}"
        if key is not None:
            self._by_key[key] = email_id
        return web.json_response({"id": email_id})
