"""The ledger's composition root: build every resource from settings and hand it in explicitly.

Nothing connects at import time. :func:`bootstrap` opens the pool and the broker connection,
declares the topology and wires the consumer, the watchdog, the outbox relay, the command
publisher and the readiness checks every role shares (the database, the broker connection);
leaving the block closes them in reverse order. What runs is the caller's choice: ``serve
--role api`` starts none of the consumer, the watchdog and the relay.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from aio_pika.abc import AbstractRobustConnection

from chassis.broker import connect, declare_topology, publisher_channel
from chassis.database import create_pool
from chassis.health import ReadinessCheck
from chassis.outbox import OutboxRelay
from chassis.topology import Topology
from contracts.codec import encode_command
from contracts.commands import RunRequested
from contracts.events import utc_now
from job_ledger.catch_up import CatchUpGate
from job_ledger.config import Settings
from job_ledger.consumer import EventConsumer
from job_ledger.watchdog import Watchdog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ledger:
    """Everything ``job-ledger serve`` may run, built once from the settings.

    ``readiness`` holds the checks every role needs (database, broker); the consumer's own
    check (``consumer.attachment.problem``) belongs to a process that starts the consumer.
    """

    settings: Settings
    topology: Topology
    pool: asyncpg.Pool
    connection: AbstractRobustConnection
    consumer: EventConsumer
    watchdog: Watchdog
    relay: OutboxRelay
    request_run: Callable[[RunRequested], Awaitable[None]]
    readiness: dict[str, ReadinessCheck]
    clock: Callable[[], datetime]


@contextlib.asynccontextmanager
async def open_pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """The ledger's pool (``search_path`` on ``LEDGER_SCHEMA``); raises ``DatabaseUnavailable``."""
    pool = await create_pool(
        settings.database_url,
        settings.ledger_schema,
        timeout_s=settings.connect_timeout.total_seconds(),
    )
    try:
        yield pool
    finally:
        await pool.close()


@contextlib.asynccontextmanager
async def open_broker(settings: Settings) -> AsyncIterator[AbstractRobustConnection]:
    """A robust connection with the topology declared; raises ``BrokerUnavailable``."""
    connection = await connect(
        settings.amqp_url.get_secret_value(),
        timeout_s=settings.connect_timeout.total_seconds(),
        name="job-ledger",
    )
    try:
        async with connection.channel() as channel:
            await declare_topology(channel, settings.topology)
        yield connection
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def bootstrap(
    settings: Settings, *, clock: Callable[[], datetime] = utc_now
) -> AsyncIterator[Ledger]:
    """Yield the wired :class:`Ledger`; nothing runs until the caller starts it.

    Raises ``DatabaseUnavailable`` or ``BrokerUnavailable`` when either cannot be reached.
    """
    topology = settings.topology
    async with open_pool(settings) as pool, open_broker(settings) as connection:
        commands = await publisher_channel(connection)
        relay = OutboxRelay(pool, connection, retention=settings.outbox_retention)
        consumer = EventConsumer(
            pool,
            connection,
            topology.queue(settings.ledger_queue),
            batch_size=settings.ledger_batch_size,
            batch_wait=settings.ledger_batch_wait,
            clock=clock,
        )
        watchdog = Watchdog(
            pool,
            topology.exchange,
            gate=CatchUpGate(
                connection,
                consumer.attachment,
                consumer.progress,
                settle=settings.watchdog_settle,
            ),
            job_name=settings.job_name,
            schedule=settings.job_schedule,
            grace=settings.job_grace,
            stale_after=settings.job_stale_after,
            interval=settings.watchdog_interval,
            clock=clock,
            on_enqueued=relay.wake,
        )

        async def request_run(command: RunRequested) -> None:
            """Publish ``command`` to the commands queue; returns once the broker confirmed."""
            await commands.default_exchange.publish(
                encode_command(command), routing_key=settings.commands_queue, mandatory=True
            )
            log.info(
                "published RunRequested (%s)",
                command.trigger,
                extra={"request_id": command.request_id},
            )

        async def database_ready() -> str | None:
            await pool.fetchval("SELECT 1")
            return None

        async def broker_ready() -> str | None:
            return "broker connection closed" if connection.is_closed else None

        try:
            yield Ledger(
                settings=settings,
                topology=topology,
                pool=pool,
                connection=connection,
                consumer=consumer,
                watchdog=watchdog,
                relay=relay,
                request_run=request_run,
                readiness={"database": database_ready, "broker": broker_ready},
                clock=clock,
            )
        finally:
            await commands.close()
