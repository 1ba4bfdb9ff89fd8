"""Stages 2 and 3, ledger ingest and backlog catch-up: a queue backlog to committed rows.

The limit: aio-pika consuming the same messages with the same prefetch, taking batches as the
ledger's consumer does (what is already received without waiting, then up to 50 ms for the
rest), a batched ``INSERT … SELECT FROM unnest(…)`` of the same rows into an event store with
the same indexes (no fold), one multiple-ack per batch. Ours: the real ``job-ledger serve``
process started on a full queue (as after an outage), until every event is stored and folded.

Both are timed the same way, from the start of the first transaction to the start of the last
one (``received_at``), so process start-up and the final commit count for neither side. The
sides alternate for several rounds. The catch-up does the same on a larger backlog (1,000,000
events by default) and samples the ledger's RSS over time.
"""

from __future__ import annotations

from pathlib import Path

from bench.backlog import MIN_EVENTS, Throughput, commit_span, fill_queue, stored, wait_stored
from bench.bare_ingest import bare_ingest
from bench.common import Endpoints, Figure, StageResult, mb, stage_cli
from bench.memory import RssSampler
from bench.publishing import purge, queue_depth
from bench.rounds import DEFAULT_ROUNDS, Spread, interleaved, spread_figure
from bench.stage_env import ledger_env, scratch_schema, scratch_topology, stage_logs
from chassis.broker import connect
from chassis.database import create_pool, migrate
from chassis.outbox import MIGRATIONS as OUTBOX_MIGRATIONS
from job_ledger.migrations import MIGRATIONS as LEDGER_MIGRATIONS
from tests.harness.ports import ReservedPort
from tests.harness.processes import ServiceProcess, started

INGEST = "ledger ingest"
CATCH_UP = "backlog catch-up"
MEMORY = "memory"
DEFAULT_EVENTS = 100_000
DEFAULT_BACKLOG = 1_000_000
MEMORY_CEILING = 200_000_000


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
        ReservedPort() as reserved,
    ):
        connection = await connect(endpoints.amqp_url, name="bench-ingest")
        try:
            await fill_queue(connection, topology, events)
            await purge(connection, topology.notifier_queue)
        finally:
            await connection.close()
        env = ledger_env(endpoints, topology, schema, http_host="127.0.0.1")
        argv = ["job-ledger", "serve", "--port", str(reserved.port)]
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
            if left or await stored(pool) != count:
                raise RuntimeError(f"bare ingest left {left} messages")
            return await commit_span(pool)
        finally:
            await pool.close()
            await connection.close()


def check_sizes(events: int, backlog_events: int, rounds: int = 1) -> None:
    """Raise ``ValueError`` unless both backlogs span several transactions (0 skips the
    catch-up; a backlog taken in one transaction has no span to time) and there is a round."""
    if rounds < 1:
        raise ValueError("--rounds must be at least 1")
    if events < MIN_EVENTS or 0 < backlog_events < MIN_EVENTS:
        raise ValueError(
            f"--events and --backlog-events (unless 0) must be at least {MIN_EVENTS:,}"
        )


def _check(totals: dict[str, int], events: int, per_job: int = 1000) -> None:
    jobs = -(-events // per_job)
    if totals["folded"] != events or totals["complete"] != jobs:
        raise RuntimeError(f"ledger folded {totals}, expected {events} events in {jobs} jobs")


async def _ingest_rounds(
    endpoints: Endpoints, events: int, logs: Path, rounds: int, *, sample_memory: bool
) -> tuple[Spread, Spread, list[RssSampler]]:
    """The bare consumer and the ledger in turn on ``events``-event backlogs, ``rounds``
    times; returns both sides' events/s and (with ``sample_memory``) the ledger's RSS."""
    samplers: list[RssSampler] = []

    async def limit(_: int) -> float:
        return (await ingest_limit(endpoints, events)).rate

    async def ours(_: int) -> float:
        throughput, sampler, totals = await ledger_ingest(
            endpoints, events, logs, sample_memory=sample_memory
        )
        _check(totals, events)
        if sampler is not None:
            samplers.append(sampler)
        return throughput.rate

    limits, ourses = await interleaved(rounds, limit, ours)
    return Spread.of(limits), Spread.of(ourses), samplers


def _memory_figure(samplers: list[RssSampler]) -> Figure:
    peaks = [s.quarter_peaks() for s in samplers]
    peak = max(s.peak for s in samplers)
    flat = all(q and q[-1] <= 1.10 * max(q[:2]) for q in peaks)
    return Figure(
        MEMORY,
        "peak RSS of job-ledger over the catch-up (MB)",
        "MB",
        mb(peak),
        None,
        None,
        goal_text="≤ 200 MB, flat over time",
        verdict=peak <= MEMORY_CEILING and flat,
        note="RSS peak per quarter of each round: "
        + "; ".join(", ".join(f"{mb(v):.0f}" for v in q) for q in peaks)
        + " MB",
    )


async def run(
    endpoints: Endpoints,
    events: int = DEFAULT_EVENTS,
    backlog_events: int = DEFAULT_BACKLOG,
    log_dir: Path | None = None,
    rounds: int = DEFAULT_ROUNDS,
) -> StageResult:
    """Ingest limit and ours on ``events``; then the catch-up of ``backlog_events`` (0: skip),
    each side ``rounds`` times, interleaved.

    Raises ``ValueError`` for a size below :data:`MIN_EVENTS` (see :func:`check_sizes`).
    """
    check_sizes(events, backlog_events)
    result = StageResult(INGEST)
    with stage_logs(log_dir) as logs:
        limit, ours, _ = await _ingest_rounds(endpoints, events, logs, rounds, sample_memory=False)
        result.figures.append(
            spread_figure(
                INGEST,
                f"events/s, {events:,}-event backlog to committed job_logs",
                "events/s",
                ours,
                limit,
                0.6,
                "≥ 60% of the limit",
            )
        )
        result.details.append(
            f"ledger ingest ({events:,} events, events/s per round): limit {limit.text()},"
            f" ours {ours.text()}"
        )
        if backlog_events:
            limit, ours, samplers = await _ingest_rounds(
                endpoints, backlog_events, logs, rounds, sample_memory=True
            )
            ours_s = Spread.of([backlog_events / rate for rate in ours.values])
            limit_s = Spread.of([backlog_events / rate for rate in limit.values])
            result.figures.append(
                spread_figure(
                    CATCH_UP,
                    f"seconds to fold a {backlog_events:,}-event backlog"
                    " (limit: the bare consumer on the same backlog)",
                    "s",
                    ours_s,
                    limit_s,
                    2.0,
                    "≥ 50% of the limit's speed (time ≤ 2×)",
                    higher_is_better=False,
                    fmt="{:,.1f}",
                )
            )
            result.figures.append(_memory_figure(samplers))
            result.details.append(
                f"backlog catch-up ({backlog_events:,} events, seconds per round): limit"
                f" {limit_s.text('{:,.1f}')}, ours {ours_s.text('{:,.1f}')}; ledger RSS peak"
                f" {max(mb(s.peak) for s in samplers):.0f} MB"
            )
    return result


if __name__ == "__main__":
    stage_cli(
        __doc__,
        run,
        check_sizes,
        events=DEFAULT_EVENTS,
        backlog_events=DEFAULT_BACKLOG,
        rounds=DEFAULT_ROUNDS,
    )
