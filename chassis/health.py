"""A small HTTP server for services without an API: ``/healthz``, ``/readyz``, ``/metrics``.

``/healthz`` says the process is alive; ``/readyz`` runs every readiness check (database
reachable, broker connected, consumer attached…) and answers 503 naming what failed;
``/metrics`` is Prometheus' text format.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping

import asyncpg
import uvicorn
from aio_pika.abc import AbstractRobustConnection
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chassis.retry import describe

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[str | None]]
"""Returns None when ready, else a short reason of its own words (answered to anyone who asks
``/readyz``: never an exception's text); may raise, which also means not ready."""

CHECK_TIMEOUT_S = 3.0


async def run_checks(checks: Mapping[str, ReadinessCheck]) -> dict[str, str]:
    """Return ``{name: "ok" | reason}`` for every check, each bounded to 3 seconds.

    A check that raises or times out is answered ``"down"`` or ``"no answer within 3s"``: the
    exception's text (which may name hosts, users or worse) goes to the log only.
    """
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            reason = await asyncio.wait_for(check(), timeout=CHECK_TIMEOUT_S)
        except TimeoutError:
            log.warning("readiness check %s gave no answer within %gs", name, CHECK_TIMEOUT_S)
            reason = f"no answer within {CHECK_TIMEOUT_S:g}s"
        except Exception as exc:
            log.warning("readiness check %s failed: %s", name, describe(exc))
            reason = "down"
        results[name] = reason or "ok"
    return results


def health_routes(checks: Mapping[str, ReadinessCheck]) -> list[Route]:
    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        results = await run_checks(checks)
        ready = all(v == "ok" for v in results.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": results},
            status_code=200 if ready else 503,
        )

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
    ]


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves SIGTERM and SIGINT to the service that embeds it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class CannotServe(OSError):
    """The HTTP server could not start: the address is taken or not ours; says which."""


def _listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` and listening; raises :class:`CannotServe`."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise CannotServe(f"cannot serve HTTP on {host}:{port}: {exc}") from exc


@contextlib.asynccontextmanager
async def serve_http(app: Starlette, host: str, port: int) -> AsyncIterator[uvicorn.Server]:
    """Serve ``app`` in this event loop until the block exits; yields the started server.

    Raises :class:`CannotServe` (an ``OSError``) if the port cannot be bound.
    """
    # Bound here, not by uvicorn: uvicorn ends the whole process on a taken port.
    sock = _listening_socket(host, port)
    # No proxy_headers: uvicorn would believe X-Forwarded-For from 127.0.0.1 by default; a
    # service that serves behind a proxy decides itself whom to believe.
    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, lifespan="off", proxy_headers=False
    )
    server = EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise CannotServe(f"HTTP server on {host}:{port} did not start")
            await asyncio.sleep(0.01)
        log.info("serving HTTP on %s:%d", host, bound_port(server))
        yield server
    finally:
        server.should_exit = True
        await task
        sock.close()


def bound_port(server: uvicorn.Server) -> int:
    """The port the server listens on (useful when it was started on port 0)."""
    for s in server.servers:
        for sock in s.sockets:
            return int(sock.getsockname()[1])
    return int(server.config.port)


def health_app(checks: Mapping[str, ReadinessCheck]) -> Starlette:
    """``/healthz``, ``/readyz`` (running ``checks``) and ``/metrics``, and nothing else."""
    return Starlette(routes=health_routes(checks))


def database_check(pool: asyncpg.Pool) -> ReadinessCheck:
    """A readiness check that Postgres answers on ``pool``."""

    async def database_ready() -> str | None:
        await pool.fetchval("SELECT 1")
        return None

    return database_ready


def broker_check(connection: AbstractRobustConnection) -> ReadinessCheck:
    """A readiness check that ``connection`` is connected to RabbitMQ (not reconnecting)."""

    async def broker_ready() -> str | None:
        return None if connection.connected.is_set() else "not connected to RabbitMQ"

    return broker_ready
