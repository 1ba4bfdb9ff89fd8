"""Stage 9, the history API while the ledger ingests: p99 at a constant rate, busy against quiet.

The ledger over a history of jobs, in two layouts: split (the goal), a ``job-ledger serve
--role api`` process serving the API while a ``--role fold`` process consumes, on the same
schema and queue; and all-in-one (reported), one ``job-ledger serve`` whose event loop serves
the API and folds. ``python -m bench.constant_rate`` (a process of its own) requests
``GET /api/admin/job-logs?limit=30`` at 200 req/s, each request at its scheduled moment, its
latency counted from that moment. Busy: while the load runs, the events of a 20,000-DAO run
(20,002, one job) are published onto the ledger's queue, pipelined as after an outage (or at a
run's pace with ``--pace``), and the load stops once the ledger has stored and folded them
all. Quiet: the same load, as long, with nothing to ingest.
Each round starts each layout afresh (all-in-one, then split) and runs busy then quiet after
one uncounted warm-up; a layout's figure is the median over the rounds of its busy p99
against the median of its quiet p99, measured on the same processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import orjson

from bench.alert_latency import percentile
from bench.common import Endpoints, Figure, StageResult, stage_cli
from bench.constant_rate import MAX_SECONDS, Load
from bench.history_api import PASSWORD, PATH, seed
from bench.publishing import publish_paced, purge
from bench.rounds import DEFAULT_ROUNDS, Spread, spread_figure
from bench.stage_env import ledger_env, scratch_schema, scratch_topology, stage_logs
from bench.wire import job_events
from chassis.broker import connect
from chassis.database import create_pool
from contracts.topology import BrokerNames
from tests.harness.ports import ReservedPort
from tests.harness.processes import ServiceProcess, started, wait_http_ok

STAGE = "history API under ingest"
DEFAULT_DAOS = 20_000
DEFAULT_JOBS = 10_000
DEFAULT_RATE = 200
WARM_UP_S = 2.0
GOAL = 3.0


@dataclass(frozen=True)
class Layout:
    """How the ledger runs for one side: the ``serve --role`` of each of its processes.

    The first role serves the API that is loaded; the last one folds.
    """

    name: str
    roles: tuple[str, ...]


ALL_IN_ONE = Layout("all-in-one", ("all",))
SPLIT = Layout("split", ("api", "fold"))


@dataclass(frozen=True)
class Setting:
    """What every round of one run of the stage shares."""

    endpoints: Endpoints
    topology: BrokerNames
    env: Mapping[str, str]
    pool: asyncpg.Pool
    logs: Path
    daos: int
    pace: int
    rate: int


@dataclass
class Samples:
    """One layout's latencies (ms), one list per round and side."""

    busy: list[list[float]] = field(default_factory=list)
    quiet: list[list[float]] = field(default_factory=list)


async def _ingest(
    endpoints: Endpoints,
    topology: BrokerNames,
    pool: asyncpg.Pool,
    daos: int,
    pace: int,
    folder: ServiceProcess,
) -> int:
    """Publish one ``daos``-DAO job's events (at ``pace`` events/s, 0: as fast as possible)
    and wait until ``folder`` (the process that consumes) folded them all."""
    events = job_events(daos)
    job_id = uuid.UUID(orjson.loads(events[0].body)["job_id"])
    connection = await connect(endpoints.amqp_url, name="bench-api-ingest")
    try:
        await publish_paced(connection, topology.exchange, events, pace)
        deadline = time.monotonic() + 600
        while not await pool.fetchval(
            "SELECT count(*) FROM job_logs WHERE id = $1 AND events_received = $2",
            job_id,
            len(events),
        ):
            if not folder.running or time.monotonic() > deadline:
                raise RuntimeError(f"the ledger did not fold the job:\n{folder.log_tail()}")
            await asyncio.sleep(0.05)
        await purge(connection, topology.notifier_queue)
    finally:
        await connection.close()
    return len(events)


@contextlib.asynccontextmanager
async def _serving(
    layout: Layout, env: Mapping[str, str], logs: Path, index: int
) -> AsyncIterator[tuple[str, ServiceProcess]]:
    """Start ``layout``'s processes, each on a port of its own, and wait until each is ready
    (the fold's consumer attached); yield the loaded URL and the folding process. Stops them
    all on the way out."""
    async with contextlib.AsyncExitStack() as stack:
        processes = []
        for role in layout.roles:
            port = stack.enter_context(ReservedPort()).port
            argv = ["job-ledger", "serve", "--role", role, "--host", "127.0.0.1"]
            argv += ["--port", str(port)]
            process = ServiceProcess(f"job-ledger-{role}-{index}", argv, env, logs)
            processes.append((process, port))
        for process, port in processes:
            await stack.enter_async_context(started(process))
            await wait_http_ok(f"http://127.0.0.1:{port}/readyz", process, timeout_s=60)
        api_port = processes[0][1]
        yield f"http://127.0.0.1:{api_port}{PATH}", processes[-1][0]


async def _round(setting: Setting, layout: Layout, samples: Samples, index: int) -> None:
    """Start ``layout`` afresh, warm it up, then add one busy and one quiet sample."""
    rate, logs = setting.rate, setting.logs
    async with _serving(layout, setting.env, logs, index) as (url, folder):
        name = f"{layout.name}-{index}"
        warm_up = Load(url, rate, WARM_UP_S, PASSWORD, logs, f"warm-up-{name}")
        await warm_up.begin()
        await warm_up.finish(early=False)
        load = Load(url, rate, MAX_SECONDS, PASSWORD, logs, f"busy-{name}")
        await load.begin()
        began = time.monotonic()
        await _ingest(
            setting.endpoints, setting.topology, setting.pool, setting.daos, setting.pace, folder
        )
        lasted = time.monotonic() - began
        samples.busy.append(await load.finish(early=True))
        load = Load(url, rate, max(1.0, lasted), PASSWORD, logs, f"quiet-{name}")
        await load.begin()
        samples.quiet.append(await load.finish(early=False))


async def run(
    endpoints: Endpoints,
    daos: int = DEFAULT_DAOS,
    jobs: int = DEFAULT_JOBS,
    rate: int = DEFAULT_RATE,
    pace: int = 0,
    log_dir: Path | None = None,
    rounds: int = DEFAULT_ROUNDS,
) -> StageResult:
    """Seed ``jobs`` jobs, then measure both layouts busy and quiet ``rounds`` times; the
    run's events are published at ``pace`` events/s (0: pipelined, as after an outage)."""
    measured = {layout.name: Samples() for layout in (ALL_IN_ONE, SPLIT)}
    async with (
        scratch_topology(endpoints.amqp_url, "api-ingest") as topology,
        scratch_schema(endpoints.database_url, "api_ingest") as schema,
    ):
        await seed(endpoints.database_url, schema, jobs)
        env = ledger_env(endpoints, topology, schema, log_level="WARNING")
        with stage_logs(log_dir) as logs:
            pool = await create_pool(endpoints.database_url, schema, max_size=1)
            setting = Setting(endpoints, topology, env, pool, logs, daos, pace, rate)
            try:
                for index in range(rounds):
                    for layout in (ALL_IN_ONE, SPLIT):
                        await _round(setting, layout, measured[layout.name], index)
            finally:
                await pool.close()
    arriving = f"at {pace:,} events/s" if pace else "as a backlog (pipelined)"
    result = StageResult(STAGE)
    split = measured[SPLIT.name]
    result.figures.append(
        _figure(
            split,
            f"p99 ms at {rate} req/s, API in a `serve --role api` process while a `--role fold`"
            f" process ingests a {daos:,}-DAO run's events arriving {arriving} (limit: the same"
            " API's p99, quiet, same processes)",
            GOAL,
        )
    )
    result.figures.append(
        _figure(
            measured[ALL_IN_ONE.name],
            "the same, API and fold in one `serve` process (limit: its quiet p99)",
            None,
        )
    )
    for layout in (SPLIT, ALL_IN_ONE):
        result.details.append(_detail(layout, measured[layout.name], rate, daos))
    return result


def _figure(samples: Samples, metric: str, goal: float | None) -> Figure:
    busy_p99 = Spread.of([percentile(r, 0.99) for r in samples.busy])
    quiet_p99 = Spread.of([percentile(r, 0.99) for r in samples.quiet])
    return spread_figure(
        STAGE,
        metric,
        "ms",
        busy_p99,
        quiet_p99,
        goal,
        f"≤ {goal:.0f}× the quiet p99" if goal is not None else "(reported)",
        higher_is_better=False,
        fmt="{:.1f}",
    )


def _detail(layout: Layout, samples: Samples, rate: int, daos: int) -> str:
    def spread(rounds: list[list[float]], share: float) -> str:
        return Spread.of([percentile(r, share) for r in rounds]).text("{:.1f}")

    counts = ", ".join(
        f"{len(b)}/{len(q)}" for b, q in zip(samples.busy, samples.quiet, strict=True)
    )
    return (
        f"history API under ingest, {layout.name} ({' + '.join(layout.roles)}; {rate} req/s,"
        f" {daos:,} DAOs, ms per round): busy p99 {spread(samples.busy, 0.99)}, quiet p99"
        f" {spread(samples.quiet, 0.99)}; busy p50 {spread(samples.busy, 0.50)}, quiet p50"
        f" {spread(samples.quiet, 0.50)}; requests busy/quiet per round {counts}; busy max"
        f" {max(max(b) for b in samples.busy):.0f} ms"
    )


if __name__ == "__main__":
    stage_cli(
        __doc__,
        run,
        daos=DEFAULT_DAOS,
        jobs=DEFAULT_JOBS,
        rate=DEFAULT_RATE,
        pace=0,
        rounds=DEFAULT_ROUNDS,
    )
