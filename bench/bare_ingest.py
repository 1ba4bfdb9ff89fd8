"""The ingest limit's consumer: a queue into an event store as fast as aio-pika and asyncpg allow.

It takes batches as the ledger's consumer does (what is already received without waiting, then
up to 50 ms for the rest, at most 500), stores each with one ``INSERT … SELECT FROM unnest(…)``
into an event store with the ledger's indexes (no parsing into models, no validation, no fold)
and acks it with one multiple-ack. Used by the ingest stages and the monitoring-CPU stage.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import asyncpg
import orjson
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

BATCH = 500
BATCH_WAIT_S = 0.05
PREFETCH = BATCH + BATCH // 5  # what the ledger's consumer asks for with its default batch

_INSERT = """
INSERT INTO job_events (event_id, job_id, job_name, event_type, schema_version, sequence,
                        occurred_at, payload)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::int[], $6::int[],
                     $7::timestamptz[], $8::jsonb[])
ON CONFLICT DO NOTHING
"""


async def bare_ingest(
    connection: AbstractRobustConnection, queue_name: str, pool: asyncpg.Pool, total: int
) -> None:
    """Consume ``total`` messages into ``job_events`` as fast as aio-pika and asyncpg allow."""
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=PREFETCH)
    inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
    queue = await channel.get_queue(queue_name, ensure=False)

    async def on_message(message: AbstractIncomingMessage) -> None:
        inbox.put_nowait(message)

    tag = await queue.consume(on_message, no_ack=False)
    done = 0
    try:
        while done < total:
            batch = await next_batch(inbox)
            rows = [orjson.loads(m.body) for m in batch]
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    _INSERT,
                    [r["event_id"] for r in rows],
                    [r["job_id"] for r in rows],
                    [r["job_name"] for r in rows],
                    [r["event_type"] for r in rows],
                    [r["schema_version"] for r in rows],
                    [r["sequence"] for r in rows],
                    [_timestamp(r["occurred_at"]) for r in rows],
                    [orjson.dumps(r["payload"]).decode() for r in rows],
                )
            await batch[-1].ack(multiple=True)
            done += len(batch)
    finally:
        await queue.cancel(tag)
        await channel.close()


async def next_batch(
    inbox: asyncio.Queue[AbstractIncomingMessage],
) -> list[AbstractIncomingMessage]:
    """Up to :data:`BATCH` messages, or what arrived within 50 ms of the first, as the ledger's
    consumer takes them: what is already in ``inbox`` is taken without waiting."""
    batch = [await inbox.get()]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BATCH_WAIT_S
    while len(batch) < BATCH:
        try:
            batch.append(inbox.get_nowait())
            continue
        except asyncio.QueueEmpty:
            pass
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        try:
            batch.append(await asyncio.wait_for(inbox.get(), remaining))
        except TimeoutError:
            break
    return batch


def _timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text)
