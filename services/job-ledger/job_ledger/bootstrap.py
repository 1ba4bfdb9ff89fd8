"""The ledger's composition root: the only code that connects, building everything from settings.

Nothing connects at import time. :func:`bootstrap` opens the pool and the broker connection,
declares the topology, opens the channel run requests are published on, and wires the
consumer, the watchdog and the outbox relay; leaving the block closes them in reverse order.
What runs is the caller's choice (:mod:`job_ledger.service`): ``serve --role api`` starts
none of the consumer, the watchdog and the relay.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from aio_pika.abc import AbstractChannel, AbstractRobustConnection

from chassis.batch_consumer import BatchConsumer
from chassis.broker import connect, declare_topology, publisher_channel
from chassis.database import create_pool
from chassis.outbox import OutboxRelay
from chassis.topology import Topology
from contracts.codec import encode_command
from contracts.commands import RunRequested
from contracts.events import Event, utc_now
from job_ledger.catch_up import CatchUpGate
from job_ledger.config import Settings
from job_ledger.consumer import event_consumer
from job_ledger.watchdog import Watchdog

log = logging.getLogger(__name__)

RequestRun = Callable[[RunRequested], Awaitable[None]]
"""Publishes a RunRequested; returns once the broker confirmed it."""


@dataclass(frozen=True)
class Ledger:
    """Everything ``job-ledger serve`` may run, built once from the settings and connected."""

    settings: Settings
    topology: Topology
    pool: asyncpg.Pool
    connection: AbstractRobustConnection
    consumer: BatchConsumer[Event]
    watchdog: Watchdog
    relay: OutboxRelay
    request_run: RequestRun
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
    async with open_pool(settings) as pool, open_broker(settings) as connection:
        commands = await publisher_channel(connection)
        try:
            relay = OutboxRelay(pool, connection, retention=settings.outbox_retention)
            consumer = event_consumer(
                pool,
                connection,
                settings.topology.queue(settings.ledger_queue),
                batch_size=settings.ledger_batch_size,
                batch_wait=settings.ledger_batch_wait,
                clock=clock,
            )
            yield Ledger(
                settings=settings,
                topology=settings.topology,
                pool=pool,
                connection=connection,
                consumer=consumer,
                watchdog=watchdog(settings, pool, connection, consumer, relay, clock),
                relay=relay,
                request_run=run_requester(commands, settings.commands_queue),
                clock=clock,
            )
        finally:
            await commands.close()


def watchdog(
    settings: Settings,
    pool: asyncpg.Pool,
    connection: AbstractRobustConnection,
    consumer: BatchConsumer[Event],
    relay: OutboxRelay,
    clock: Callable[[], datetime],
) -> Watchdog:
    """The watchdog, judging once ``consumer`` has caught up, waking ``relay`` for what it
    publishes."""
    gate = CatchUpGate(
        connection, consumer.attachment, consumer.progress, settle=settings.watchdog_settle
    )
    return Watchdog(
        pool,
        settings.topology.exchange,
        gate=gate,
        job_name=settings.job_name,
        schedule=settings.job_schedule,
        grace=settings.job_grace,
        stale_after=settings.job_stale_after,
        interval=settings.watchdog_interval,
        clock=clock,
        on_enqueued=relay.wake,
    )


def run_requester(channel: AbstractChannel, commands_queue: str) -> RequestRun:
    """Publishes a RunRequested to ``commands_queue`` on ``channel`` (a publisher channel)."""

    async def request_run(command: RunRequested) -> None:
        """Publish ``command``; returns once the broker confirmed it."""
        await channel.default_exchange.publish(
            encode_command(command), routing_key=commands_queue, mandatory=True
        )
        log.info(
            "published RunRequested (%s)", command.trigger, extra={"request_id": command.request_id}
        )

    return request_run
