"""Stages 2 and 3, ledger ingest and backlog catch-up: a queue backlog to committed rows.

The limit: aio-pika consuming the same messages with the same prefetch, acking each batch with
one multiple-ack, after a batched ``INSERT … SELECT FROM unnest(…)`` of the same rows into an
event store with the same indexes (no fold). Ours: the real ``job-ledger serve`` process
started on a full queue (as after an outage), until every event is stored and folded.

Both are timed the same way, from the start of the first transaction to the start of the last
one (``received_at``), so process start-up and the final commit count for neither side.
The catch-up runs ours on a larger backlog (1,000,000 events by default) and samples the
ledger's RSS over time; its limit is the ingest limit, scaled.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import aio_pika
import asyncpg
import orjson
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from bench.common import (
    Endpoints,
    Figure,
    RssSampler,
    ServiceProcess,
    StageResult,
    backlog,
    free_port,
    log_directory,
    mb,
    publish_pipelined,
    purge,
    queue_depth,
    scratch_schema,
    scratch_topology,
    service_env,
    stage_cli,
    started,
)
from chassis.broker import connect
from chassis.database import create_pool, migrate
from chassis.outbox import MIGRATIONS as OUTBOX_MIGRATIONS
from contracts.topology import Topology
from job_ledger.migrations import MIGRATIONS as LEDGER_MIGRATIONS

INGEST = "ledger ingest"
CATCH_UP = "backlog catch-up"
MEMORY = "memory"
DEFAULT_EVENTS = 100_000
DEFAULT_BACKLOG = 1_000_000
BATCH = 500
PREFETCH = BATCH + BATCH // 5  # what the ledger's consumer asks for with its default batch
MEMORY_CEILING = 200_000_000
MIN_EVENTS = 3 * BATCH  # several transactions on either side, so there is a span to time

_INSERT = """
INSERT INTO job_events (event_id, job_id, job_name, event_type, schema_version, sequence,
                        occurred_at, payload)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::int[], $6::int[],
                     $7::timestamptz[], $8::jsonb[])
ON CONFLICT DO NOTHING
"""


@dataclass(frozen=True)
class Throughput:
    events: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


async def commit_span(pool: asyncpg.Pool) -> Throughput:
    """Events stored after the first transaction began, over the time from the first
    transaction's start to the last one's (the last batch is excluded from both)."""
    row = await pool.fetchrow(
        "SELECT min(received_at) AS first, max(received_at) AS last, count(*) AS total,"
        " count(*) FILTER (WHERE received_at = (SELECT max(received_at) FROM job_events))"
        " AS in_last FROM job_events WHERE sequence IS NOT NULL"
    )
    assert row is not None
    if row["total"] == 0 or row["first"] == row["last"]:
        # One transaction took the whole backlog: there is no span to time, so no rate.
        raise RuntimeError(
            f"{row['total']} events were stored in a single transaction; a backlog of at"
            f" least {MIN_EVENTS:,} events is needed to time the ingest"
        )
    return Throughput(
        int(row["total"]) - int(row["in_last"]), (row["last"] - row["first"]).total_seconds()
    )


async def _stored(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM job_events WHERE sequence IS NOT NULL"))


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
    loop = asyncio.get_running_loop()
    done = 0
    try:
        while done < total:
            batch = [await inbox.get()]
            deadline = loop.time() + 0.05
            while len(batch) < BATCH:
                try:
                    batch.append(await asyncio.wait_for(inbox.get(), deadline - loop.time()))
                except TimeoutError:
                    break
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


def _timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def fill_queue(
    connection: AbstractRobustConnection, topology: Topology, events: int
) -> tuple[int, float]:
    """Publish a backlog of ``events`` (whole jobs of 1,000 events) onto the exchange.

    A broker restarted mid-way (another suite's fault test, say) leaves a partial backlog:
    it is purged and the backlog published again, up to three times in all.
    """
    for attempt in range(3):
        try:
            return await publish_pipelined(connection, topology.exchange, backlog(events))
        except (aio_pika.exceptions.AMQPError, RuntimeError, ConnectionError) as exc:
            if attempt == 2:
                raise
            print(f"[bench] refilling the backlog after {exc!r}", file=sys.stderr, flush=True)
            await _purge_when_back(connection, topology)
    raise AssertionError("unreachable")


async def _purge_when_back(connection: AbstractRobustConnection, topology: Topology) -> None:
    """Purge the partial backlog once the broker answers again (within two minutes)."""
    deadline = time.monotonic() + 120
    while True:
        await asyncio.sleep(5)  # the robust connection reconnects meanwhile
        try:
            await purge(connection, topology.ledger_queue, topology.notifier_queue)
            return
        except (aio_pika.exceptions.AMQPError, RuntimeError, ConnectionError):
            if time.monotonic() > deadline:
                raise


async def wait_stored(
    pool: asyncpg.Pool, total: int, process: ServiceProcess | None, timeout_s: float
) -> None:
    """Wait until ``total`` sequenced events are stored; raise ``RuntimeError`` if they aren't."""
    deadline = time.monotonic() + timeout_s
    while (count := await _stored(pool)) < total:
        if process is not None and not process.running:
            raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {count} of {total} events stored in {timeout_s:.0f}s")
        await asyncio.sleep(0.5 if total < 200_000 else 2.0)


async def ledger_ingest(
    endpoints: Endpoints,
    events: int,
    log_dir: Path,
    *,
    sample_memory: bool = False,
) -> tuple[Throughput, RssSampler | None, dict[str, int]]:
    """Fill a queue with ``events``, start ``job-ledger serve`` on it and wait until all are
    folded; returns the throughput, the RSS samples and the folded rows' totals."""
    async with (
        scratch_topology(endpoints.amqp_url, "ingest") as topology,
        scratch_schema(endpoints.database_url, "ingest") as schema,
    ):
        connection = await connect(endpoints.amqp_url, name="bench-ingest")
        try:
            await fill_queue(connection, topology, events)
            await purge(connection, topology.notifier_queue)
        finally:
            await connection.close()
        env = service_env(
            endpoints,
            topology,
            ledger_schema=schema,
            admin_password="bench-password",
            session_secret="bench-session-secret",
            http_host="127.0.0.1",
        )
        argv = ["job-ledger", "serve", "--port", str(free_port())]
        process = ServiceProcess(f"job-ledger-{schema}", argv, env, log_dir)
        # The schema is created by the ledger's own migration at start; poll it from here.
        await migrate(endpoints.database_url, schema, [OUTBOX_MIGRATIONS, LEDGER_MIGRATIONS])
        pool = await create_pool(endpoints.database_url, schema, max_size=2)
        try:
            async with started(process):
                sampler = RssSampler(process.pid) if sample_memory else None
                if sampler is not None:
                    async with sampler:
                        await wait_stored(pool, events, process, timeout_s=3600)
                else:
                    await wait_stored(pool, events, process, timeout_s=1200)
            throughput = await commit_span(pool)
            totals = await pool.fetchrow(
                "SELECT count(*) AS jobs, coalesce(sum(events_received), 0) AS folded,"
                " count(*) FILTER (WHERE status = 'completed'"
                " AND events_received = expected_events) AS complete FROM job_logs"
            )
        finally:
            await pool.close()
    assert totals is not None
    return throughput, sampler, {k: int(v) for k, v in totals.items()}


async def ingest_limit(endpoints: Endpoints, events: int) -> Throughput:
    """The bare consumer on the same backlog, into an event store of its own."""
    async with (
        scratch_topology(endpoints.amqp_url, "bare-ingest") as topology,
        scratch_schema(endpoints.database_url, "bare_ingest") as schema,
    ):
        await migrate(endpoints.database_url, schema, [OUTBOX_MIGRATIONS, LEDGER_MIGRATIONS])
        connection = await connect(endpoints.amqp_url, name="bench-bare-ingest")
        pool = await create_pool(endpoints.database_url, schema, max_size=2)
        try:
            count, _ = await fill_queue(connection, topology, events)
            await purge(connection, topology.notifier_queue)
            await bare_ingest(connection, topology.ledger_queue, pool, count)
            async with connection.channel() as channel:
                left = await queue_depth(channel, topology.ledger_queue)
            if left or await _stored(pool) != count:
                raise RuntimeError(f"bare ingest left {left} messages")
            return await commit_span(pool)
        finally:
            await pool.close()
            await connection.close()


def check_sizes(events: int, backlog_events: int) -> None:
    """Raise ``ValueError`` unless both backlogs span several transactions (0 skips the
    catch-up): a backlog taken in one transaction has no span to time."""
    if events < MIN_EVENTS or 0 < backlog_events < MIN_EVENTS:
        raise ValueError(
            f"--events and --backlog-events (unless 0) must be at least {MIN_EVENTS:,}"
        )


def _check(totals: dict[str, int], events: int, per_job: int = 1000) -> None:
    jobs = -(-events // per_job)
    if totals["folded"] != events or totals["complete"] != jobs:
        raise RuntimeError(f"ledger folded {totals}, expected {events} events in {jobs} jobs")


async def run(
    endpoints: Endpoints,
    events: int = DEFAULT_EVENTS,
    backlog_events: int = DEFAULT_BACKLOG,
    log_dir: Path | None = None,
) -> StageResult:
    """Ingest limit and ours on ``events``; then the catch-up of ``backlog_events`` (0: skip).

    Raises ``ValueError`` for a size below :data:`MIN_EVENTS` (see :func:`check_sizes`).
    """
    check_sizes(events, backlog_events)
    result = StageResult(INGEST)
    with log_directory() if log_dir is None else contextlib.nullcontext(log_dir) as logs:
        limit = await ingest_limit(endpoints, events)
        ours, _, totals = await ledger_ingest(endpoints, events, logs)
        _check(totals, events)
        result.figures.append(
            Figure(
                INGEST,
                f"events/s, {events:,}-event backlog to committed job_logs",
                "events/s",
                ours.rate,
                limit.rate,
                0.6,
                goal_text="≥ 60% of the limit",
            )
        )
        result.details.append(
            f"ledger ingest: limit {limit.rate:,.0f}/s ({limit.events:,} in {limit.seconds:.2f}s),"
            f" ours {ours.rate:,.0f}/s ({ours.events:,} in {ours.seconds:.2f}s)"
        )
        if backlog_events:
            caught, sampler, totals = await ledger_ingest(
                endpoints, backlog_events, logs, sample_memory=True
            )
            _check(totals, backlog_events)
            assert sampler is not None
            ours_s = backlog_events / caught.rate if caught.rate else float("inf")
            limit_s = backlog_events / limit.rate
            result.figures.append(
                Figure(
                    CATCH_UP,
                    f"seconds to fold a {backlog_events:,}-event backlog"
                    " (limit: the ingest limit, scaled)",
                    "s",
                    ours_s,
                    limit_s,
                    2.0,
                    higher_is_better=False,
                    goal_text="≥ 50% of the limit's speed (time ≤ 2×)",
                )
            )
            quarters = sampler.quarter_peaks()
            flat = bool(quarters) and quarters[-1] <= 1.10 * max(quarters[:2])
            result.figures.append(
                Figure(
                    MEMORY,
                    "peak RSS of job-ledger over the catch-up (MB)",
                    "MB",
                    mb(sampler.peak),
                    None,
                    None,
                    goal_text="≤ 200 MB, flat over time",
                    verdict=sampler.peak <= MEMORY_CEILING and flat,
                    note="RSS peak per quarter of the run: "
                    + ", ".join(f"{mb(q):.0f}" for q in quarters)
                    + " MB",
                )
            )
            result.details.append(
                f"backlog catch-up: {backlog_events:,} events at {caught.rate:,.0f}/s"
                f" ({ours_s:.1f}s; limit scaled {limit_s:.1f}s); ledger RSS peak"
                f" {mb(sampler.peak):.0f} MB, per quarter "
                + ", ".join(f"{mb(q):.0f}" for q in quarters)
            )
    return result


if __name__ == "__main__":
    stage_cli(__doc__, run, check_sizes, events=DEFAULT_EVENTS, backlog_events=DEFAULT_BACKLOG)
