"""Stage 1, the outbox relay: outbox rows to confirmed publishes, beside bare aio-pika.

The limit: aio-pika publishing the same bodies, properties and routing keys to the same
exchange and quorum queues with pipelined confirms (1,000 in flight), no database. Ours:
:meth:`chassis.outbox.OutboxRelay.run`, the loop the services run (a batch, the pending-row
count, pruning), over an outbox holding the same events (written before the clock starts),
until every row is confirmed and marked sent. The sides alternate for several rounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import asyncpg
import orjson
from aio_pika.abc import AbstractRobustConnection

from bench.common import Endpoints, StageResult, stage_cli
from bench.publishing import publish_pipelined, purge
from bench.rounds import DEFAULT_ROUNDS, Spread, interleaved, spread_figure
from bench.stage_env import scratch_schema, scratch_topology
from bench.wire import WireEvent, backlog
from chassis import outbox
from chassis.broker import connect
from chassis.database import create_pool, migrate
from contracts.topology import BrokerNames

STAGE = "outbox relay"
DEFAULT_EVENTS = 100_000
POLL_S = 0.05


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


async def relay_loop(
    pool: asyncpg.Pool, connection: AbstractRobustConnection, total: int, timeout_s: float
) -> float:
    """Run the relay's service loop until every row is sent; return the seconds it took.

    Raises ``RuntimeError`` when rows are still unsent after ``timeout_s`` or the loop died.
    """
    relay = outbox.OutboxRelay(pool, connection)
    started = time.perf_counter()
    task = asyncio.create_task(relay.run())
    try:
        deadline = started + timeout_s
        while await outbox.pending_count(pool):
            if task.done():
                raise RuntimeError(f"the relay loop ended: {task.exception()!r}")
            if time.perf_counter() > deadline:
                raise RuntimeError(f"the relay left rows unsent after {timeout_s:.0f}s")
            await asyncio.sleep(POLL_S)
        elapsed = time.perf_counter() - started
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    sent = await pool.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL")
    if sent != total:
        raise RuntimeError(f"the relay marked {sent} of {total} rows sent")
    return elapsed


async def _rounds(
    endpoints: Endpoints, topology: BrokerNames, schema: str, wire: list[WireEvent], rounds: int
) -> tuple[list[float], list[float]]:
    connection = await connect(endpoints.amqp_url, name="bench-relay")
    await migrate(endpoints.database_url, schema, [outbox.MIGRATIONS])
    pool = await create_pool(endpoints.database_url, schema, max_size=4)
    try:

        async def limit(_: int) -> float:
            count, seconds = await publish_pipelined(connection, topology.exchange, wire)
            await purge(connection, topology.ledger_queue, topology.notifier_queue)
            return count / seconds

        async def ours(_: int) -> float:
            await pool.execute("TRUNCATE outbox")
            await fill_outbox(pool, topology.exchange, wire)
            seconds = await relay_loop(pool, connection, len(wire), timeout_s=600)
            await purge(connection, topology.ledger_queue, topology.notifier_queue)
            return len(wire) / seconds

        return await interleaved(rounds, limit, ours)
    finally:
        await pool.close()
        await connection.close()


async def run(
    endpoints: Endpoints, events: int = DEFAULT_EVENTS, rounds: int = DEFAULT_ROUNDS
) -> StageResult:
    """Measure the limit and the relay in turn, ``rounds`` times on ``events`` events."""
    wire = list(backlog(events))
    async with (
        scratch_topology(endpoints.amqp_url, "relay") as topology,
        scratch_schema(endpoints.database_url, "relay") as schema,
    ):
        limits, ourses = await _rounds(endpoints, topology, schema, wire, rounds)
    limit, ours = Spread.of(limits), Spread.of(ourses)
    result = StageResult(STAGE)
    result.figures.append(
        spread_figure(
            STAGE,
            f"events/s, {len(wire):,} outbox rows to confirmed publishes (the run() loop)",
            "events/s",
            ours,
            limit,
            0.6,
            "≥ 60% of the limit",
        )
    )
    result.details.append(
        f"outbox relay ({len(wire):,} events, events/s per round): limit {limit.text()},"
        f" ours {ours.text()}"
    )
    return result


if __name__ == "__main__":
    stage_cli(__doc__, run, events=DEFAULT_EVENTS, rounds=DEFAULT_ROUNDS)
