"""Stage 1, the outbox relay: outbox rows to confirmed publishes, beside bare aio-pika.

The limit: aio-pika publishing the same bodies, properties and routing keys to the same
exchange and quorum queues with pipelined confirms (1,000 in flight), no database. Ours:
:class:`chassis.outbox.OutboxRelay` draining an outbox holding the same events (written before
the clock starts), until every row is confirmed and marked sent.
"""

from __future__ import annotations

import time

import asyncpg
import orjson

from bench.common import (
    Endpoints,
    Figure,
    StageResult,
    WireEvent,
    backlog,
    publish_pipelined,
    purge,
    scratch_schema,
    scratch_topology,
    stage_cli,
)
from chassis import outbox
from chassis.broker import connect
from chassis.database import create_pool, migrate

STAGE = "outbox relay"
DEFAULT_EVENTS = 100_000


async def fill_outbox(pool: asyncpg.Pool, exchange: str, events: list[WireEvent]) -> None:
    """Write ``events`` into the outbox as ``enqueue`` would, in one COPY (setup, not timed)."""
    records = [
        (e.event_id, e.routing_key, exchange, e.body, orjson.dumps(e.properties()).decode())
        for e in events
    ]
    async with pool.acquire() as conn:
        await conn.copy_records_to_table(
            "outbox",
            records=records,
            columns=["message_id", "routing_key", "exchange", "body", "properties"],
        )


async def run(endpoints: Endpoints, events: int = DEFAULT_EVENTS) -> StageResult:
    """Measure the limit, then the relay, on ``events`` events; returns the stage's figures."""
    wire = list(backlog(events))
    result = StageResult(STAGE)
    async with (
        scratch_topology(endpoints.amqp_url, "relay") as topology,
        scratch_schema(endpoints.database_url, "relay") as schema,
    ):
        connection = await connect(endpoints.amqp_url, name="bench-relay")
        try:
            count, seconds = await publish_pipelined(connection, topology.exchange, wire)
            limit = count / seconds
            await purge(connection, topology.ledger_queue, topology.notifier_queue)

            await migrate(endpoints.database_url, schema, [outbox.MIGRATIONS])
            pool = await create_pool(endpoints.database_url, schema, max_size=4)
            try:
                await fill_outbox(pool, topology.exchange, wire)
                relay = outbox.OutboxRelay(pool, connection)
                started = time.perf_counter()
                left = await relay.drain(timeout_s=600)
                elapsed = time.perf_counter() - started
                sent = await pool.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL")
            finally:
                await pool.close()
            if left or sent != len(wire):
                raise RuntimeError(f"relay left {left} rows unsent ({sent} of {len(wire)} sent)")
            await purge(connection, topology.ledger_queue, topology.notifier_queue)
        finally:
            await connection.close()
    ours = sent / elapsed
    result.figures.append(
        Figure(
            STAGE,
            f"events/s, {len(wire):,} outbox rows to confirmed publishes",
            "events/s",
            ours,
            limit,
            0.6,
            goal_text="≥ 60% of the limit",
        )
    )
    result.details.append(
        f"outbox relay: limit {limit:,.0f}/s ({count:,} in {seconds:.2f}s), "
        f"ours {ours:,.0f}/s ({sent:,} in {elapsed:.2f}s)"
    )
    return result


if __name__ == "__main__":
    stage_cli(__doc__, run, events=DEFAULT_EVENTS)
