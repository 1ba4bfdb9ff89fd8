"""The running notifier: the outbox relay, the dispatcher and the consumer, run by the chassis.

:meth:`Notifier.serve` is what ``notifier serve`` does once migrated and bootstrapped: the
chassis runner (:func:`chassis.runner.serve`) serves ``/healthz``, ``/readyz`` (database,
broker, consumer) and ``/metrics``, starts the parts in this order and stops them in the
reverse one on SIGTERM or on the first crash:

| part         | runs                                         | on stop                          |
|--------------|----------------------------------------------|----------------------------------|
| outbox-relay | publishes the outcome events                 | publishes what it can, 5 s       |
| retention    | prunes old marks and finished records hourly | cancelled                        |
| dispatcher   | sends records (first: what a crash left)     | lets deliveries finish, 10 s     |
| consumer     | records outcome events (re-attached if lost) | lets messages in hand finish, 10 s |
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import asyncpg
from aio_pika.abc import AbstractRobustConnection

from chassis.consumer import MessageConsumer
from chassis.database import DatabaseUrl, migrate
from chassis.health import broker_check, database_check
from chassis.migrations import MigrationSource
from chassis.outbox import MIGRATIONS as OUTBOX_MIGRATIONS
from chassis.outbox import OutboxRelay
from chassis.retention import Retention, retention_component
from chassis.runner import Component, Serving, relay_component, serve
from notifier.dispatcher import Dispatcher
from notifier.history import OutcomeEvent

log = logging.getLogger(__name__)

MIGRATIONS = MigrationSource("notifier", Path(__file__).parent / "migrations")

DRAIN_TIMEOUT_S = 10.0


class Notifier:
    """The built service; :meth:`serve` runs it. Resources belong to whoever built it."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        connection: AbstractRobustConnection,
        consumer: MessageConsumer[OutcomeEvent],
        dispatcher: Dispatcher,
        relay: OutboxRelay,
        retention: Retention,
    ) -> None:
        self.pool = pool
        self.connection = connection
        self.consumer = consumer
        self.dispatcher = dispatcher
        self.relay = relay
        self.retention = retention
        self.port: int | None = None
        """The health server's port once serving (useful when it was asked for port 0)."""

    def components(self) -> list[Component]:
        """The parts :meth:`serve` runs, in the order they start (see the module docstring)."""
        return [
            relay_component(self.relay),
            retention_component(self.retention),
            Component(
                "dispatcher",
                self.dispatcher.run,
                stop=self.dispatcher.stop,
                stop_timeout_s=DRAIN_TIMEOUT_S,
            ),
            Component(
                "consumer",
                self.consumer.run,
                start=self.consumer.start,
                stop=self.consumer.stop,
                stop_timeout_s=DRAIN_TIMEOUT_S,
                ready=self.consumer.problem,
            ),
        ]

    async def serve(
        self,
        stop: asyncio.Event | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        on_ready: Callable[[Notifier], None] = lambda _: None,
    ) -> int:
        """Run until ``stop`` is set (default: SIGTERM or SIGINT), then drain; ``on_ready`` is
        called once all is started. Returns 0, or 1 if a part stopped by itself.

        Raises ``CannotServe`` if the HTTP port cannot be bound, or the broker's error if the
        consumer cannot attach.
        """

        def ready(serving: Serving) -> None:
            self.port = serving.port
            on_ready(self)

        checks = {"database": database_check(self.pool), "broker": broker_check(self.connection)}
        return await serve(
            self.components(), checks=checks, host=host, port=port, stop=stop, on_ready=ready
        )


async def migrate_schema(database_url: DatabaseUrl, schema: str) -> list[str]:
    """Apply the outbox's and the notifier's migrations to ``schema``; return what ran."""
    return await migrate(database_url, schema, [OUTBOX_MIGRATIONS, MIGRATIONS])
