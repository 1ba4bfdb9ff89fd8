"""The real ``job-ledger serve`` through a full RabbitMQ restart (``stop_app`` / ``start_app``).

The chaos campaign found the ledger's queue without a consumer after a broker restart during a
large run: a batch was being committed when the broker went away, acking it on the dead channel
raised, and the consumer (then the whole process) stopped. This test holds a batch mid-commit
with a table lock so the broker is always stopped under an unacked batch, whatever the timing.

It stops the machine's broker, so it is marked ``chaos`` and keeps the downtime short; the
broker is started again in a ``finally`` whatever happened.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import asyncpg
import pytest
from aio_pika.abc import AbstractRobustConnection

from chassis.broker import declare_topology
from chassis.topology import Topology
from contracts.topology import BrokerNames
from tests.chaos.faults import ensure_broker_up, queue_consumers, stop_broker
from tests.support.broker import eventually
from tests.support.ledger import job_events, open_ledger_pool, publish
from tests.support.processes import ServiceProcess, free_port, running, wait_http_ok

# Shorter than the robust connection's 5 s reconnect interval is not a restart it notices
# reliably; the held batch, not the length of the outage, is what reproduces the failure.
DOWN_S = 3.0


@pytest.fixture
async def pool(database_url: str, schema: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await open_ledger_pool(database_url, schema)
    yield pool
    await pool.close()


def ledger(
    database_url: str, amqp_url: str, schema: str, topology: BrokerNames, tmp_path: Path, port: int
) -> ServiceProcess:
    env = {
        "DATABASE_URL": database_url,
        "AMQP_URL": amqp_url,
        "LEDGER_SCHEMA": schema,
        "EVENTS_EXCHANGE": topology.exchange,
        "LEDGER_QUEUE": topology.ledger_queue,
        "NOTIFIER_QUEUE": topology.notifier_queue,
        "COMMANDS_QUEUE": topology.commands_queue,
        "ADMIN_PASSWORD": "correct horse battery staple",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
    }
    return ServiceProcess("job-ledger", ["job-ledger", "serve", "--port", str(port)], env, tmp_path)


async def stored(pool: asyncpg.Pool, job_id: uuid.UUID) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM job_events WHERE job_id = $1", job_id))


async def blocked_on(pool: asyncpg.Pool, schema: str) -> int:
    """Sessions waiting for a lock on this schema's ``job_events`` (the ledger's held batch)."""
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = $1::regclass",
            f'"{schema}".job_events',
        )
    )


@pytest.mark.chaos
async def test_the_ledger_consumes_again_after_a_broker_restart_under_a_batch(
    pool: asyncpg.Pool,
    amqp: AbstractRobustConnection,
    amqp_url: str,
    database_url: str,
    schema: str,
    topology: BrokerNames,
    tmp_path: Path,
) -> None:
    await declare_topology(await amqp.channel(), Topology.of(topology))
    before, after = job_events(uuid.uuid4(), 300), job_events(uuid.uuid4(), 300)
    port = free_port()
    process = ledger(database_url, amqp_url, schema, topology, tmp_path, port)
    readyz = f"http://127.0.0.1:{port}/readyz"
    async with running(process):
        await wait_http_ok(readyz, process)
        try:
            # Hold the ledger's first batch mid-transaction: delivered, not yet acked.
            async with pool.acquire() as holder:
                lock = holder.transaction()
                await lock.start()
                await holder.execute("LOCK TABLE job_events IN SHARE MODE")
                await publish(amqp, topology, before)
                await eventually(lambda: blocked_on(pool, schema), lambda n: n >= 1)
                await stop_broker()
                # The batch commits while the broker is down; its ack has no channel.
                await lock.rollback()
            await asyncio.sleep(DOWN_S)  # the outage itself, not a synchronisation
        finally:
            await ensure_broker_up()

        name = topology.ledger_queue
        await eventually(
            lambda: queue_consumers({name}), lambda found: found == {name: 1}, timeout_s=30
        )
        await wait_http_ok(readyz, process, timeout_s=30)
        connection = await aio_pika.connect_robust(amqp_url)
        try:
            await publish(connection, topology, after)
        finally:
            await connection.close()
        # The batch committed under the outage is redelivered and ignored as duplicates;
        # nothing published before or after the restart is missing.
        for events in (before, after):
            await eventually(
                functools.partial(stored, pool, events[0].job_id),
                lambda n: n == 300,
                timeout_s=30,
            )
        received = await pool.fetchval(
            "SELECT sum(events_received) FROM job_logs WHERE id = ANY($1)",
            [before[0].job_id, after[0].job_id],
        )
        assert received == 600
        assert process.starts == 1 and process.running, process.log_tail()
        assert await process.stop() == 0, process.log_tail()
