"""The chassis on a three-node cluster: the topology's quorum queues get a replica on every
node and dead-letter as on one node; a connection given every node's URL takes the first,
fails over when that node is SIGKILLed (it also leads the queues declared through it),
re-attaches its consumer and lets the outbox relay go on without losing a row."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import aio_pika
import asyncpg
from aio_pika.abc import AbstractIncomingMessage

from chassis.attachment import CHANNEL_GONE_ERRORS, Attachment, watch_attachment
from chassis.broker import connect, declare_topology
from chassis.database import create_pool, migrate
from chassis.failover import FailoverConnection
from chassis.outbox import MIGRATIONS, OutboxRelay, enqueue, pending_count
from chassis.topology import Topology
from tests.cluster.harness import RabbitCluster
from tests.harness.scratch import remove_topology, topology_named
from tests.support.broker import eventually

T = TypeVar("T")

FAILOVER_BOUND_S = 20.0
"""A lost node's clients are on another node within this (5 s reconnect interval, an election)."""
CONSUMER_BOUND_S = 30.0
"""A consumer takes messages again within this of its node's death."""


async def test_every_queue_of_the_topology_has_a_replica_on_every_node(
    rabbit_cluster: RabbitCluster, unique: str
) -> None:
    names = topology_named(f"test.{unique}")
    topology = Topology.of(names)
    connection = await connect(",".join(rabbit_cluster.amqp_urls), name="replicas-test")
    try:
        channel = await connection.channel()
        await declare_topology(channel, topology)
        queues = [q for spec in topology.queues for q in (spec.name, spec.dead_letter_queue)]
        assert len(queues) == 6
        for queue in queues:
            replicas = rabbit_cluster.replicas(queue)
            assert sorted(replicas.members) == sorted(rabbit_cluster.names), queue
            assert sorted(replicas.online) == sorted(rabbit_cluster.names), queue

        ledger = topology.queue(names.ledger_queue)
        await channel.default_exchange.publish(aio_pika.Message(b"refused"), ledger.name)
        message = await (await channel.get_queue(ledger.name)).get(timeout=10)  # confirmed
        await message.reject(requeue=False)  # dead-lettered, as on one node
        dead_queue = await channel.get_queue(ledger.dead_letter_queue)
        dead = await eventually(lambda: dead_queue.get(fail=False), lambda m: m is not None)
        assert dead is not None and dead.body == b"refused"
    finally:
        await connection.close()
        await remove_topology(rabbit_cluster.amqp_urls[0], names)


@dataclass
class Received:
    """What a consumer got: every message id, the time of each first sight, acks that failed."""

    ids: list[str] = field(default_factory=list)
    first_seen: dict[str, float] = field(default_factory=dict)

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        message_id = message.message_id or ""
        self.ids.append(message_id)
        self.first_seen.setdefault(message_id, time.monotonic())
        with contextlib.suppress(*CHANNEL_GONE_ERRORS):
            await message.ack()


@contextlib.asynccontextmanager
async def outbox_pool(database_url: str, schema: str) -> AsyncIterator[asyncpg.Pool]:
    await migrate(database_url, schema, [MIGRATIONS])
    pool = await create_pool(database_url, schema)
    try:
        yield pool
    finally:
        await pool.close()


async def write_rows(pool: asyncpg.Pool, exchange: str, count: int) -> list[str]:
    """Enqueue ``count`` messages in one transaction; return their message ids."""
    ids = [str(uuid.uuid4()) for _ in range(count)]
    async with pool.acquire() as conn, conn.transaction():
        for message_id in ids:
            message = aio_pika.Message(message_id.encode(), message_id=message_id)
            await enqueue(conn, exchange, "cluster.dao.processed", message)
    return ids


def polled(read: Callable[[], T]) -> Callable[[], Awaitable[T]]:
    """``read`` as the awaitable probe :func:`eventually` takes."""

    async def probe() -> T:
        return read()

    return probe


async def wait_for_failover(connection: FailoverConnection, lost_url: str, lost_at: float) -> float:
    """Seconds from ``lost_at`` (``time.monotonic()``) until ``connection`` is connected again
    through another address than ``lost_url``; raises ``AssertionError`` if that takes
    :data:`FAILOVER_BOUND_S`."""
    await eventually(
        polled(lambda: connection.connected.is_set() and str(connection.url)),
        lambda url: bool(url) and url != lost_url,
        timeout_s=FAILOVER_BOUND_S - (time.monotonic() - lost_at),
    )
    return time.monotonic() - lost_at


async def test_a_connection_fails_over_when_its_node_is_killed_and_loses_no_outbox_row(
    rabbit_cluster: RabbitCluster, database_url: str, schema: str, unique: str
) -> None:
    names = topology_named(f"test.{unique}")
    topology = Topology.of(names)
    first, *others = rabbit_cluster.amqp_urls
    connection = await connect(",".join(rabbit_cluster.amqp_urls), timeout_s=5, name="failover")
    assert str(connection.url) == first  # the first address that answers
    await declare_topology(await connection.channel(), topology)
    first_node = rabbit_cluster.names[0]
    assert rabbit_cluster.leader_of(names.ledger_queue) == first_node

    received = Received()
    attachment = Attachment(connection, topology.queue(names.ledger_queue), 50, received.on_message)
    await attachment.attach()
    watch = asyncio.create_task(watch_attachment(attachment, interval_s=1.0))
    async with outbox_pool(database_url, schema) as pool:
        relay = OutboxRelay(pool, connection, batch_size=100, max_backoff_s=2.0)
        relaying = asyncio.create_task(relay.run())
        try:
            before = await write_rows(pool, names.exchange, 2000)
            await eventually(polled(lambda: len(received.first_seen)), lambda n: n > 200)

            killed_at = time.monotonic()
            rabbit_cluster.kill(first_node)  # mid-relay: confirms are outstanding on the link
            pending_at_kill = await pending_count(pool)
            after = await write_rows(pool, names.exchange, 500)
            failover_s = await wait_for_failover(connection, first, killed_at)
            assert str(connection.url) in others

            expected = set(before) | set(after)
            await eventually(
                polled(lambda: len(expected - set(received.first_seen))),  # rows not received
                lambda missing: missing == 0,
                timeout_s=60,
            )
            consumer_back_s = min(received.first_seen[i] for i in after) - killed_at
            assert await eventually(lambda: pending_count(pool), lambda n: n == 0) == 0
            retried = await pool.fetchval("SELECT count(*) FROM outbox WHERE attempts > 1")
        finally:
            relaying.cancel()
            await attachment.detach()
            watch.cancel()
            await asyncio.gather(relaying, watch, return_exceptions=True)
    duplicates = len(received.ids) - len(set(received.ids))
    print(
        f"failover: connected again in {failover_s:.1f}s, consumer took messages after"
        f" {consumer_back_s:.1f}s, {len(before) + len(after)} rows,"
        f" {len(set(received.ids))} distinct messages, {duplicates} duplicates,"
        f" {pending_at_kill} rows pending at the kill, {retried} rows published again"
    )
    assert consumer_back_s < CONSUMER_BOUND_S
    assert retried > 0, "no confirm was outstanding at the kill: the test proved nothing"
    assert set(received.ids) == expected

    # While the first node is down, a new connection with the same list takes the second.
    second = await connect(",".join(rabbit_cluster.amqp_urls), timeout_s=5, name="second")
    try:
        assert str(second.url) == others[0]
    finally:
        await second.close()
        await connection.close()
        await remove_topology(others[0], names)
