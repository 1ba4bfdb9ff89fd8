"""The outbox relay on the real Postgres and RabbitMQ: confirms, order, outages, no queue bound."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
from aio_pika.abc import AbstractRobustConnection
from yarl import URL

from chassis.broker import connect, declare_topology, publisher_channel
from chassis.database import create_pool, migrate
from chassis.outbox import MIGRATIONS, OutboxRelay, enqueue, pending_count
from chassis.topology import Topology
from contracts import (
    BrokerNames,
    DaoProcessed,
    DaoProcessedPayload,
    encode_event,
    parse_event,
    routing_key,
)
from tests.support.broker import collect, eventually
from tests.support.tcp_proxy import TcpProxy

JOB = uuid.uuid4()


@pytest.fixture
async def pool(database_url: str, schema: str) -> AsyncIterator[asyncpg.Pool]:
    await migrate(database_url, schema, [MIGRATIONS])
    pool = await create_pool(database_url, schema)
    yield pool
    await pool.close()


def processed(seq: int) -> DaoProcessed:
    return DaoProcessed(
        job_id=JOB,
        job_name="weekly-gvs-recalculation",
        sequence=seq,
        payload=DaoProcessedPayload(dao_id=f"dao-{seq}", dao_name="D", score=50, duration_ms=1),
    )


async def write_events(pool: asyncpg.Pool, topology: BrokerNames, count: int) -> None:
    async with pool.acquire() as conn, conn.transaction():
        for seq in range(1, count + 1):
            event = processed(seq)
            await enqueue(conn, topology.exchange, routing_key(event), encode_event(event))


async def test_relay_publishes_every_row_in_order_and_marks_it_sent(
    pool: asyncpg.Pool, amqp: AbstractRobustConnection, topology: BrokerNames
) -> None:
    await declare_topology(await amqp.channel(), Topology.of(topology))
    await write_events(pool, topology, 1200)

    relay = OutboxRelay(pool, amqp, batch_size=500)
    assert await relay.drain(timeout_s=20) == 0

    queue = await (await amqp.channel()).get_queue(topology.ledger_queue)
    messages = await collect(queue, 1200)
    assert [parse_event(m.body).sequence for m in messages] == list(range(1, 1201))
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0


async def test_rows_wait_in_the_outbox_while_no_queue_is_bound(
    pool: asyncpg.Pool, amqp: AbstractRobustConnection, topology: BrokerNames
) -> None:
    # Only the exchange exists: a fresh deployment before any consumer declared its queue.
    channel = await publisher_channel(amqp)
    await channel.declare_exchange(topology.exchange, "topic", durable=True)
    await write_events(pool, topology, 5)

    relay = OutboxRelay(pool, amqp)
    assert await relay.drain(timeout_s=1) == 5
    assert "returned" in (relay.last_error or "")

    await declare_topology(channel, Topology.of(topology))
    assert await relay.drain(timeout_s=10) == 0
    queue = await channel.get_queue(topology.ledger_queue)
    assert len(await collect(queue, 5)) == 5


async def test_a_broker_outage_delays_events_and_loses_none(
    pool: asyncpg.Pool, amqp_url: str, amqp: AbstractRobustConnection, topology: BrokerNames
) -> None:
    await declare_topology(await amqp.channel(), Topology.of(topology))
    url = URL(amqp_url)
    async with TcpProxy(url.host or "127.0.0.1", url.port or 5672) as proxy:
        relay_connection = await connect(str(url.with_port(proxy.port)), timeout_s=5)
        relay = OutboxRelay(pool, relay_connection, max_backoff_s=0.5)
        task = asyncio.create_task(relay.run())
        try:
            await write_events(pool, topology, 50)
            await eventually(lambda: pending_count(pool), lambda n: n == 0)

            proxy.cut()
            async with pool.acquire() as conn, conn.transaction():
                for seq in range(51, 101):
                    event = processed(seq)
                    await enqueue(conn, topology.exchange, routing_key(event), encode_event(event))
            await asyncio.sleep(1.5)
            assert await pending_count(pool) == 50, "nothing can be confirmed while cut"

            proxy.restore()
            await eventually(lambda: pending_count(pool), lambda n: n == 0, timeout_s=30)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await relay_connection.close()

    queue = await (await amqp.channel()).get_queue(topology.ledger_queue)
    messages = await collect(queue, 100)
    sequences = {parse_event(m.body).sequence for m in messages}
    assert sequences == set(range(1, 101))


async def test_prune_deletes_only_rows_sent_before_the_retention(
    pool: asyncpg.Pool, amqp: AbstractRobustConnection, topology: BrokerNames
) -> None:
    await declare_topology(await amqp.channel(), Topology.of(topology))
    await write_events(pool, topology, 3)
    relay = OutboxRelay(pool, amqp, retention=timedelta(hours=1))
    await relay.drain(timeout_s=10)
    await pool.execute("UPDATE outbox SET sent_at = now() - interval '2 hours' WHERE id = 1")
    await write_events(pool, topology, 1)  # unsent: never pruned

    assert await relay.prune() == 1
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 3
