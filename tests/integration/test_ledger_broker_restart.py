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

from chassis.broker import declare_topology
from chassis.topology import Topology
from tests.chaos.faults import ensure_broker_up, queue_consumers, stop_broker
from tests.harness.processes import ServiceProcess, running, wait_http_ok
from tests.harness.stack import Stack
from tests.support.broker import eventually
from tests.support.ledger import job_events, open_ledger_pool, publish

# Shorter than the robust connection's 5 s reconnect interval is not a restart it notices
# reliably; the held batch, not the length of the outage, is what reproduces the failure.
DOWN_S = 3.0


@pytest.fixture
async def pool(stack: Stack) -> AsyncIterator[asyncpg.Pool]:
    pool = await open_ledger_pool(stack.database_url, stack.schema)
    yield pool
    await pool.close()


def ledger(stack: Stack, tmp_path: Path, port: int) -> ServiceProcess:
    env = {**stack.ledger_env(), "ADMIN_PASSWORD": "correct horse battery staple"}
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
    stack: Stack,
    pool: asyncpg.Pool,
    tmp_path: Path,
) -> None:
    await declare_topology(await stack.amqp.channel(), Topology.of(stack.topology))
    before, after = job_events(uuid.uuid4(), 300), job_events(uuid.uuid4(), 300)
    port = stack.port()
    process = ledger(stack, tmp_path, port)
    readyz = f"http://127.0.0.1:{port}/readyz"
    async with running(process):
        await wait_http_ok(readyz, process)
        try:
            # Hold the ledger's first batch mid-transaction: delivered, not yet acked.
            async with pool.acquire() as holder:
                lock = holder.transaction()
                await lock.start()
                await holder.execute("LOCK TABLE job_events IN SHARE MODE")
                await publish(stack.amqp, stack.topology, before)
                await eventually(lambda: blocked_on(pool, stack.schema), lambda n: n >= 1)
                await stop_broker()
                # The batch commits while the broker is down; its ack has no channel.
                await lock.rollback()
            await asyncio.sleep(DOWN_S)  # the outage itself, not a synchronisation
        finally:
            await ensure_broker_up()

        name = stack.topology.ledger_queue
        await eventually(
            lambda: queue_consumers({name}), lambda found: found == {name: 1}, timeout_s=30
        )
        await wait_http_ok(readyz, process, timeout_s=30)
        connection = await aio_pika.connect_robust(stack.amqp_url)
        try:
            await publish(connection, stack.topology, after)
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
