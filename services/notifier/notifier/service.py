"""The running notifier: consumer, dispatcher, outbox relay and the health server, together.

:meth:`Notifier.serve` is what ``notifier serve`` does once migrated and bootstrapped: serve
until the stop event, then drain (stop consuming, let deliveries in flight finish, publish
what the outbox holds). While it serves, a watch re-attaches the consumer if the broker lost
it (see :mod:`chassis.attachment`), and ``/readyz`` says not ready until it has.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

import asyncpg
from aio_pika.abc import AbstractRobustConnection

from chassis.attachment import watch_attachment
from chassis.database import migrate
from chassis.health import bound_port, health_app, serve_http
from chassis.migrations import MigrationSource
from chassis.outbox import MIGRATIONS as OUTBOX_MIGRATIONS
from chassis.outbox import OutboxRelay
from notifier.consumer import Consumer
from notifier.dispatcher import Dispatcher

log = logging.getLogger(__name__)

MIGRATIONS = MigrationSource("notifier", Path(__file__).parent / "migrations")

DRAIN_TIMEOUT_S = 10.0
WATCH_INTERVAL_S = 5.0


class Notifier:
    """The built service; :meth:`serve` runs it. Resources belong to whoever built it."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        connection: AbstractRobustConnection,
        consumer: Consumer,
        dispatcher: Dispatcher,
        relay: OutboxRelay,
    ) -> None:
        self.pool = pool
        self.connection = connection
        self.consumer = consumer
        self.dispatcher = dispatcher
        self.relay = relay
        self.port: int | None = None

    async def _database_ready(self) -> str | None:
        await self.pool.fetchval("SELECT 1")
        return None

    async def _broker_ready(self) -> str | None:
        return None if self.connection.connected.is_set() else "not connected to RabbitMQ"

    async def _consumer_ready(self) -> str | None:
        return await self.consumer.attachment.problem()

    async def serve(
        self,
        stop: asyncio.Event,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        on_ready: Callable[[Notifier], None] = lambda _: None,
    ) -> None:
        """Run until ``stop`` is set, then drain; ``on_ready`` is called once all is started.

        Raises ``OSError`` if the HTTP port cannot be bound.
        """
        checks = {
            "database": self._database_ready,
            "broker": self._broker_ready,
            "consumer": self._consumer_ready,
        }
        relay_task = asyncio.create_task(self.relay.run(), name="outbox-relay")
        # Started before the consumer: records a crash left pending go out first.
        dispatcher_task = asyncio.create_task(self.dispatcher.run(), name="dispatcher")
        try:
            async with serve_http(health_app(checks), host, port) as server:
                self.port = bound_port(server)
                await self.consumer.start()
                watch_task = asyncio.create_task(
                    watch_attachment(self.consumer.attachment, WATCH_INTERVAL_S),
                    name="consumer-watch",
                )
                try:
                    log.info("notifier ready; health on port %d", self.port)
                    on_ready(self)
                    await stop.wait()
                finally:
                    # Before the consumer stops: a re-attach in the drain would take new work.
                    await _cancel(watch_task)
                log.info("stopping: draining the consumer, deliveries and outbox")
                await self.consumer.stop(DRAIN_TIMEOUT_S)
        finally:
            await _cancel(dispatcher_task)
            await self.dispatcher.drain(DRAIN_TIMEOUT_S)
            await _cancel(relay_task)
            left = await self.relay.drain(5.0)
            if left:
                log.warning("%d events stay in the outbox; they go out at the next start", left)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def migrate_schema(database_url: str, schema: str) -> list[str]:
    """Apply the outbox's and the notifier's migrations to ``schema``; return what ran."""
    return await migrate(database_url, schema, [OUTBOX_MIGRATIONS, MIGRATIONS])
