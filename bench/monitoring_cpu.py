"""Stage 7, the CPU cost of monitoring: CPU per event over every process a run's events cross.

The events are a real run's: a 20,000-DAO run on the file source, scored with no broker
(``bench.big_run.scoring_limit``), leaves its 20,002 events in its outbox (setup, not
measured). Each side then carries those events from an outbox or memory to committed rows:

- ours: the services' relay loop (``OutboxRelay.run`` in a process of its own), RabbitMQ and
  ``job-ledger serve`` (parse, validate, store, fold);
- the limit, the bare pipeline: the same events published pipelined from memory
  (``bench.publishing.publish_pipelined``), consumed and inserted in batches by the ingest
  limit's consumer (``bench.ledger_ingest.bare_ingest``), each in a process of its own.

For each side the CPU seconds (user + system from ``/proc``) of its two processes, the
broker's Erlang VM and the whole Postgres process tree are summed from the moment the
publishing side is told to start (its start-up is outside) until the last event is stored
(and, for ours, folded into a complete ``job_logs`` row). The sides alternate for several
rounds; the figure is CPU milliseconds per event.
"""

from __future__ import annotations

import asyncio
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from bench.big_run import prepare, scoring_limit, write_inputs
from bench.common import Endpoints, StageResult, stage_cli
from bench.cpu import (
    CpuMeter,
    broker_pids,
    cpu_seconds,
    postmaster_pid,
    processes_named,
    with_descendants,
)
from bench.pipeline_processes import PipelineContext, helper_process, wait_ready
from bench.rounds import DEFAULT_ROUNDS, Spread, spread_figure
from bench.stage_env import (
    interleaved_on_empty_queues,
    ledger_env,
    ledger_server,
    scratch_schema,
    scratch_topology,
    stage_logs,
)
from chassis.database import create_pool, migrate
from chassis.outbox import MIGRATIONS as OUTBOX_MIGRATIONS
from chassis.outbox import copy_outbox
from job_ledger.migrations import MIGRATIONS as LEDGER_MIGRATIONS
from tests.harness.ports import ReservedPort
from tests.harness.processes import ServiceProcess, started, wait_http_ok

STAGE = "monitoring CPU"
DEFAULT_DAOS = 20_000
# /proc counts each process's CPU in clock ticks (10 ms): a 30-DAO run's whole span is a few
# ticks, and may read as none. 1,000 DAOs give each side tens of ticks.
MIN_DAOS = 1_000
GOAL = 1.5


@dataclass(frozen=True)
class CpuSample:
    """One side's CPU seconds per group of processes, for ``events`` events."""

    seconds: dict[str, float]
    events: int
    wall_s: float

    @property
    def ms_per_event(self) -> float:
        return 1000 * sum(self.seconds.values()) / self.events


async def _measure(
    ctx: PipelineContext,
    groups: dict[str, Callable[[], set[int]]],
    publisher: ServiceProcess,
    done: Callable[[], Awaitable[bool]],
    watched: list[ServiceProcess],
) -> CpuSample:
    """Start ``publisher`` (SIGUSR1) inside a CPU span that ends when ``done()`` is true.

    Raises ``RuntimeError`` when a watched process exits, the events are not all stored within
    600 s, a server restarts during the span, or the span reads as no CPU at all (too few events
    for /proc's clock ticks).
    """
    groups = {
        **groups,
        "broker": broker_pids,
        "postgres": lambda: with_descendants(ctx.postmaster),
    }
    deadline = time.monotonic() + 600
    servers = {ctx.postmaster, *processes_named("beam.smp")}
    async with CpuMeter(groups) as meter:
        began = time.perf_counter()
        assert publisher.process is not None
        publisher.process.send_signal(signal.SIGUSR1)
        while not await done():
            for process in watched:
                if not process.running:
                    raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError("the events were not all stored within 600 s")
            await asyncio.sleep(0.1)
        wall = time.perf_counter() - began
    if any(cpu_seconds(pid) is None for pid in servers):
        # A restarted server's new processes would be counted from zero, its old ones lost.
        raise RuntimeError("RabbitMQ or Postgres restarted during the measurement")
    seconds = meter.seconds()
    if sum(seconds.values()) <= 0:
        raise RuntimeError(
            f"{ctx.events:,} events used no clock tick of CPU that /proc counts in"
            f" {wall:.2f} s: a run of at least {MIN_DAOS:,} DAOs is needed to measure"
        )
    return CpuSample(seconds, ctx.events, wall)


async def bare_side(ctx: PipelineContext, folder: Path, index: int) -> CpuSample:
    """The bare pipeline on the run's events, into an event store of its own."""
    async with scratch_schema(ctx.endpoints.database_url, "cost_bare") as schema:
        await migrate(ctx.endpoints.database_url, schema, [OUTBOX_MIGRATIONS, LEDGER_MIGRATIONS])
        pool = await create_pool(ctx.endpoints.database_url, schema, max_size=1)
        ready = [folder / f"bare-{index}-{n}" for n in ("consume", "publish")]
        consumer = helper_process(
            "cost-consume",
            ["consume", "--schema", schema, "--queue", ctx.topology.ledger_queue]
            + ["--total", str(ctx.events)],
            ctx,
            ready[0],
        )
        publisher = helper_process(
            "cost-publish",
            ["publish", "--schema", ctx.source_schema, "--exchange", ctx.topology.exchange],
            ctx,
            ready[1],
        )
        try:
            async with started(consumer), started(publisher):
                await wait_ready(ready[0], consumer)
                await wait_ready(ready[1], publisher)

                async def stored() -> bool:
                    count = await pool.fetchval("SELECT count(*) FROM job_events")
                    return bool(count >= ctx.events)

                return await _measure(
                    ctx,
                    {"publisher": lambda: {publisher.pid}, "consumer": lambda: {consumer.pid}},
                    publisher,
                    stored,
                    [consumer, publisher],
                )
        finally:
            await pool.close()


async def _fill_outbox(database_url: str, source: str, target: str, exchange: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await copy_outbox(conn, source, target, exchange)
    finally:
        await conn.close()


async def our_side(ctx: PipelineContext, folder: Path, index: int) -> CpuSample:
    """The relay loop and ``job-ledger serve`` on the run's events."""
    url = ctx.endpoints.database_url
    async with (
        scratch_schema(url, "cost_relay") as relay_schema,
        scratch_schema(url, "cost_ledger") as ledger_schema,
        ReservedPort() as reserved,
    ):
        await migrate(url, relay_schema, [OUTBOX_MIGRATIONS])
        await _fill_outbox(url, ctx.source_schema, relay_schema, ctx.topology.exchange)
        port = reserved.port
        env = ledger_env(ctx.endpoints, ctx.topology, ledger_schema)
        ledger = ledger_server("cost-ledger", port, env, ctx.logs)
        ready = folder / f"relay-{index}"
        relay = helper_process("cost-relay", ["relay", "--schema", relay_schema], ctx, ready)
        async with started(ledger), started(relay):
            await wait_http_ok(f"http://127.0.0.1:{port}/healthz", ledger, timeout_s=60)
            await wait_ready(ready, relay)
            pool = await create_pool(url, ledger_schema, max_size=1)
            try:

                async def folded() -> bool:
                    return bool(
                        await pool.fetchval(
                            "SELECT count(*) FROM job_logs WHERE events_received = $1"
                            " AND expected_events = $1",
                            ctx.events,
                        )
                    )

                return await _measure(
                    ctx,
                    {"relay": lambda: {relay.pid}, "ledger": lambda: {ledger.pid}},
                    relay,
                    folded,
                    [ledger, relay],
                )
            finally:
                await pool.close()


def _breakdown(samples: list[CpuSample]) -> str:
    median = sorted(samples, key=lambda s: s.ms_per_event)[len(samples) // 2]
    parts = ", ".join(f"{name} {seconds:.2f}" for name, seconds in median.seconds.items())
    return f"{parts} CPU-s in {median.wall_s:.1f} s wall"


async def run(
    endpoints: Endpoints,
    daos: int = DEFAULT_DAOS,
    log_dir: Path | None = None,
    rounds: int = DEFAULT_ROUNDS,
) -> StageResult:
    """Score a ``daos``-DAO run, then carry its events through both pipelines in turn."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-cost-") as temp,
        stage_logs(log_dir) as logs,
    ):
        folder = Path(temp)
        records, data = await asyncio.to_thread(write_inputs, folder, daos)
        async with (
            scratch_schema(endpoints.database_url, "cost_source") as source,
            scratch_topology(endpoints.amqp_url, "cost") as topology,
        ):
            await prepare(endpoints, source, data, records)
            await scoring_limit(endpoints, source, data)
            ctx = PipelineContext(
                endpoints,
                topology,
                source,
                daos + 2,
                logs,
                await postmaster_pid(endpoints.database_url),
            )
            limits, ourses = await interleaved_on_empty_queues(
                endpoints.amqp_url,
                "bench-cost",
                rounds,
                (lambda index: bare_side(ctx, folder, index), topology),
                (lambda index: our_side(ctx, folder, index), topology),
            )
    ours_ms = Spread.of([s.ms_per_event for s in ourses])
    limit_ms = Spread.of([s.ms_per_event for s in limits])
    result = StageResult(STAGE)
    result.figures.append(
        spread_figure(
            STAGE,
            f"CPU-ms per event, the {daos + 2:,} events of a {daos:,}-DAO run, relay + broker"
            " + ledger + Postgres (limit: bare publish, consume, batched insert)",
            "CPU-ms/event",
            ours_ms,
            limit_ms,
            GOAL,
            f"≤ {GOAL}× the bare pipeline's",
            higher_is_better=False,
            fmt="{:.3f}",
        )
    )
    result.details.append(
        f"monitoring CPU (CPU-ms per event per round): limit {limit_ms.text('{:.3f}')}, ours"
        f" {ours_ms.text('{:.3f}')}; median round, limit: {_breakdown(limits)}; ours:"
        f" {_breakdown(ourses)}"
    )
    return result


if __name__ == "__main__":
    stage_cli(__doc__, run, daos=DEFAULT_DAOS, rounds=DEFAULT_ROUNDS)
