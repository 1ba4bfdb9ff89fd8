"""The ledger's schema and broker side for tests: a migrated pool, generated jobs, publishing.

Shared by the ``test_ledger_*`` integration tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

import aio_pika
import asyncpg
from aio_pika.abc import AbstractRobustConnection

from chassis.batch_consumer import BatchConsumer
from chassis.broker import publisher_channel
from chassis.database import create_pool, migrate
from chassis.outbox import MIGRATIONS as OUTBOX_MIGRATIONS
from chassis.topology import Topology
from contracts.codec import encode_event, parse_command
from contracts.commands import RunRequested
from contracts.events import (
    DaoFailed,
    DaoFailedPayload,
    DaoProcessed,
    DaoProcessedPayload,
    Event,
    JobStarted,
    JobStartedPayload,
    routing_key,
)
from contracts.topology import BrokerNames
from job_ledger.consumer import event_consumer
from job_ledger.migrations import MIGRATIONS
from tests.harness.scratch import service_env

JOB_NAME = "weekly-gvs-recalculation"


def ledger_env(
    database_url: str, amqp_url: str, schema: str, topology: BrokerNames
) -> dict[str, str]:
    """The environment a ``job-ledger`` process reads for this test's schema and broker names,
    logging JSON at INFO; no ``ADMIN_PASSWORD`` (a caller serving the API adds it)."""
    return {
        **service_env(database_url, amqp_url, topology),
        "LEDGER_SCHEMA": schema,
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
    }


async def open_ledger_pool(database_url: str, schema: str) -> asyncpg.Pool:
    await migrate(database_url, schema, [OUTBOX_MIGRATIONS, MIGRATIONS])
    return await create_pool(database_url, schema)


def job_events(job_id: uuid.UUID, count: int, fail_every: int = 7) -> list[Event]:
    """JobStarted and ``count - 1`` DAO events of one job (every ``fail_every``-th fails)."""
    events: list[Event] = [
        JobStarted(
            job_id=job_id,
            job_name=JOB_NAME,
            payload=JobStartedPayload(daos_total=count - 1, trigger="cron"),
        )
    ]
    for seq in range(1, count):
        if seq % fail_every == 0:
            events.append(
                DaoFailed(
                    job_id=job_id,
                    job_name=JOB_NAME,
                    sequence=seq,
                    payload=DaoFailedPayload(
                        dao_id=f"dao-{seq}", dao_name="D", error="x", attempts=3
                    ),
                )
            )
        else:
            events.append(
                DaoProcessed(
                    job_id=job_id,
                    job_name=JOB_NAME,
                    sequence=seq,
                    payload=DaoProcessedPayload(
                        dao_id=f"dao-{seq}", dao_name="D", score=1, duration_ms=1
                    ),
                )
            )
    return events


async def publish(
    connection: AbstractRobustConnection, topology: BrokerNames, events: Sequence[Event]
) -> None:
    channel = await publisher_channel(connection)
    try:
        exchange = await channel.get_exchange(topology.exchange)
        for start in range(0, len(events), 200):
            await asyncio.gather(
                *(
                    exchange.publish(encode_event(e), routing_key(e), mandatory=True)
                    for e in events[start : start + 200]
                )
            )
    finally:
        await channel.close()


async def publish_raw(
    connection: AbstractRobustConnection,
    topology: BrokerNames,
    body: bytes,
    key: str,
    message_id: str,
) -> None:
    channel = await publisher_channel(connection)
    try:
        exchange = await channel.get_exchange(topology.exchange)
        message = aio_pika.Message(
            body=body, message_id=message_id, content_type="application/json"
        )
        await exchange.publish(message, key, mandatory=True)
    finally:
        await channel.close()


@contextlib.asynccontextmanager
async def consuming(
    pool: asyncpg.Pool,
    connection: AbstractRobustConnection,
    topology: BrokerNames,
    batch_size: int = 500,
) -> AsyncIterator[tuple[BatchConsumer[Event], asyncio.Task[None]]]:
    consumer = event_consumer(
        pool,
        connection,
        Topology.of(topology).queue(topology.ledger_queue),
        batch_size=batch_size,
        batch_wait=timedelta(milliseconds=20),
        max_backoff_s=1.0,
    )
    await consumer.start()
    task = asyncio.create_task(consumer.run())
    try:
        yield consumer, task
    finally:
        await consumer.stop()
        await asyncio.wait_for(task, 30)


async def take_commands(
    amqp: AbstractRobustConnection, topology: BrokerNames, count: int, within_s: float = 10.0
) -> list[RunRequested]:
    """Consume (and ack) what is on the commands queue for up to ``within_s``, stopping at
    ``count``; return what came.

    A consumer, not basic.get: the commands queue is a single-active-consumer quorum queue,
    which does not allow basic.get.
    """
    channel = await amqp.channel()
    queue = await channel.get_queue(topology.commands_queue)
    got: list[RunRequested] = []
    try:
        async with asyncio.timeout(within_s), queue.iterator() as messages:
            async for message in messages:
                await message.ack()
                got.append(parse_command(message.body))
                if len(got) >= count:
                    break
    except TimeoutError:
        pass
    finally:
        await channel.close()
    return got
