"""``job_ledger.service.serve``: the fold's parts run by the chassis runner, stopped in order.

On the real broker and database: a stop lets the consumer's batch in hand commit and be acked
before ``serve`` returns.
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from job_ledger.bootstrap import Ledger, bootstrap
from job_ledger.config import Settings
from job_ledger.recording import record_events
from job_ledger.service import serve
from tests.harness.stack import Stack
from tests.support.broker import eventually
from tests.support.ledger import job_events, publish


def ledger_settings(stack: Stack) -> Settings:
    return Settings(
        database_url=stack.database_url,
        amqp_url=stack.amqp_url,
        ledger_schema=stack.schema,
        events_exchange=stack.topology.exchange,
        ledger_queue=stack.topology.ledger_queue,
        notifier_queue=stack.topology.notifier_queue,
        commands_queue=stack.topology.commands_queue,
        job_schedule="0 0 1 1 *",
    )


async def consumer_attached(ledger: Ledger) -> str | None:
    return await ledger.consumer.problem()


async def received(ledger: Ledger) -> int:
    return ledger.consumer.progress.received


async def stored(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM job_events"))


async def test_a_stop_lets_the_batch_in_hand_commit_and_be_acked_before_serve_returns(
    stack: Stack, pool: asyncpg.Pool
) -> None:
    job_id = uuid.uuid4()
    events = job_events(job_id, 8)
    async with pool.acquire() as conn, conn.transaction():
        await record_events(conn, events[:2])
    stop = asyncio.Event()

    async with bootstrap(ledger_settings(stack)) as ledger:
        serving = asyncio.create_task(serve(ledger, "fold", host="127.0.0.1", port=0, stop=stop))
        await eventually(lambda: consumer_attached(ledger), lambda problem: problem is None)
        async with pool.acquire() as holder, holder.transaction():
            # The job's row is locked: the batch of its later events cannot commit yet.
            await holder.execute("SELECT 1 FROM job_logs WHERE id = $1 FOR UPDATE", job_id)
            await publish(stack.amqp, stack.topology, events[2:])
            await eventually(lambda: received(ledger), lambda n: n == len(events) - 2)
            stop.set()
            await asyncio.sleep(0.5)
            assert not serving.done(), "serve returned with a batch in hand"
        assert await asyncio.wait_for(serving, 30) == 0

    assert await stored(pool) == len(events)
    queue = await (await stack.amqp.channel()).declare_queue(
        stack.topology.ledger_queue, passive=True
    )
    assert queue.declaration_result.message_count == 0, "the committed batch was acked"
