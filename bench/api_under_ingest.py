"""Stage 9, the history API while the ledger ingests: p99 at a constant rate, busy against quiet.

One ``job-ledger serve`` (API, consumer, watchdog, relay in one process) over a history of
jobs. ``python -m bench.constant_rate`` (a process of its own) requests
``GET /api/admin/job-logs?limit=30`` at 200 req/s, each request at its scheduled moment, its
latency counted from that moment. Busy: while the load runs, the events of a 20,000-DAO run
(20,002, one job) are published onto the ledger's queue, pipelined as after an outage (or at a
run's pace with ``--pace``), and the load stops once the ledger has stored and folded them
all. Quiet: the same load, as long, with nothing to ingest.
Each round is busy then quiet, after one uncounted warm-up; the figure is the median over the
rounds of the busy p99 against the median of the quiet p99, measured in the same process.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import orjson
from aio_pika.abc import AbstractRobustConnection

from bench.alert_latency import percentile
from bench.common import (
    Endpoints,
    Figure,
    ServiceProcess,
    StageResult,
    WireEvent,
    free_port,
    job_events,
    log_directory,
    publish_pipelined,
    purge,
    scratch_schema,
    scratch_topology,
    service_env,
    stage_cli,
    started,
    wait_until_http_ok,
)
from bench.constant_rate import MAX_SECONDS
from bench.history_api import PASSWORD, PATH, seed
from bench.rounds import DEFAULT_ROUNDS, Spread, spread_note
from chassis.broker import connect, publisher_channel
from chassis.database import create_pool
from contracts.topology import Topology

STAGE = "history API under ingest"
DEFAULT_DAOS = 20_000
DEFAULT_JOBS = 10_000
DEFAULT_RATE = 200
WARM_UP_S = 2.0
GOAL = 3.0


class Load:
    """One run of the constant-rate load process against ``url``."""

    def __init__(self, url: str, rate: int, seconds: float, folder: Path, name: str) -> None:
        self.out = folder / f"{name}.json"
        self.began = folder / f"{name}.began"
        argv = [sys.executable, "-m", "bench.constant_rate", "--url", url, "--rate", str(rate)]
        argv += ["--seconds", f"{seconds:.2f}", "--token", PASSWORD, "--out", str(self.out)]
        argv += ["--started", str(self.began)]
        self.process = ServiceProcess(name, argv, {}, folder)

    async def begin(self) -> None:
        """Start the process; return once its first request is due."""
        await self.process.start()
        deadline = time.monotonic() + 60
        while not await asyncio.to_thread(self.began.exists):
            if not self.process.running or time.monotonic() > deadline:
                raise RuntimeError(f"the load did not start:\n{self.process.log_tail()}")
            await asyncio.sleep(0.02)

    async def finish(self, early: bool) -> list[float]:
        """Stop the schedule (``early``) or let it end; return the latencies in ms.

        Raises ``RuntimeError`` when a request failed or the process failed.
        """
        if early and self.process.process is not None:
            self.process.process.terminate()
        code = await self.process.wait(MAX_SECONDS + 30)
        if code != 0:
            raise RuntimeError(f"the load exited {code}:\n{self.process.log_tail()}")
        data = orjson.loads(await asyncio.to_thread(self.out.read_bytes))
        if data["errors"]:
            raise RuntimeError(f"requests failed during the load {self.out.stem}: {data['errors']}")
        return [float(v) for v in data["latencies_ms"]]


async def publish_paced(
    connection: AbstractRobustConnection, exchange_name: str, events: list[WireEvent], pace: int
) -> None:
    """Publish ``events`` (persistent, mandatory, confirmed) at ``pace`` events/s, in 20
    confirmed chunks a second, or pipelined as fast as the broker allows when ``pace`` is 0."""
    if not pace:
        await publish_pipelined(connection, exchange_name, events)
        return
    channel = await publisher_channel(connection)
    try:
        exchange = await channel.get_exchange(exchange_name, ensure=False)
        chunk = max(1, pace // 20)
        began = time.perf_counter()
        for start in range(0, len(events), chunk):
            delay = began + start / pace - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await asyncio.gather(
                *(
                    exchange.publish(e.message(), e.routing_key, mandatory=True)
                    for e in events[start : start + chunk]
                )
            )
    finally:
        await channel.close()


async def _ingest(
    endpoints: Endpoints,
    topology: Topology,
    pool: asyncpg.Pool,
    daos: int,
    pace: int,
    ledger: ServiceProcess,
) -> int:
    """Publish one ``daos``-DAO job's events (at ``pace`` events/s, 0: as fast as possible)
    and wait until the ledger folded them all."""
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
            if not ledger.running or time.monotonic() > deadline:
                raise RuntimeError(f"the ledger did not fold the job:\n{ledger.log_tail()}")
            await asyncio.sleep(0.05)
        await purge(connection, topology.notifier_queue)
    finally:
        await connection.close()
    return len(events)


async def _rounds(
    endpoints: Endpoints,
    topology: Topology,
    ledger: ServiceProcess,
    url: str,
    pool: asyncpg.Pool,
    daos: int,
    pace: int,
    rate: int,
    rounds: int,
    folder: Path,
) -> tuple[list[list[float]], list[list[float]]]:
    """Busy then quiet, ``rounds`` times; each side's latencies per round."""
    warm_up = Load(url, rate, WARM_UP_S, folder, "warm-up")
    await warm_up.begin()
    await warm_up.finish(early=False)
    busy: list[list[float]] = []
    quiet: list[list[float]] = []
    for index in range(rounds):
        load = Load(url, rate, MAX_SECONDS, folder, f"busy-{index}")
        await load.begin()
        began = time.monotonic()
        await _ingest(endpoints, topology, pool, daos, pace, ledger)
        lasted = time.monotonic() - began
        busy.append(await load.finish(early=True))
        load = Load(url, rate, max(1.0, lasted), folder, f"quiet-{index}")
        await load.begin()
        quiet.append(await load.finish(early=False))
    return busy, quiet


async def run(
    endpoints: Endpoints,
    daos: int = DEFAULT_DAOS,
    jobs: int = DEFAULT_JOBS,
    rate: int = DEFAULT_RATE,
    pace: int = 0,
    log_dir: Path | None = None,
    rounds: int = DEFAULT_ROUNDS,
) -> StageResult:
    """Seed ``jobs`` jobs, start the ledger, and measure busy and quiet ``rounds`` times; the
    run's events are published at ``pace`` events/s (0: pipelined, as after an outage)."""
    async with (
        scratch_topology(endpoints.amqp_url, "api-ingest") as topology,
        scratch_schema(endpoints.database_url, "api_ingest") as schema,
    ):
        await seed(endpoints.database_url, schema, jobs)
        with log_directory() if log_dir is None else contextlib.nullcontext(log_dir) as logs:
            port = free_port()
            env = service_env(
                endpoints,
                topology,
                ledger_schema=schema,
                admin_password=PASSWORD,
                session_secret="bench-session-secret",
                log_level="WARNING",
            )
            argv = ["job-ledger", "serve", "--host", "127.0.0.1", "--port", str(port)]
            ledger = ServiceProcess("job-ledger-api-ingest", argv, env, logs)
            pool = await create_pool(endpoints.database_url, schema, max_size=1)
            try:
                async with started(ledger):
                    await wait_until_http_ok(f"http://127.0.0.1:{port}/healthz", ledger)
                    url = f"http://127.0.0.1:{port}{PATH}"
                    busy, quiet = await _rounds(
                        endpoints, topology, ledger, url, pool, daos, pace, rate, rounds, logs
                    )
            finally:
                await pool.close()
    busy_p99 = Spread.of([percentile(r, 0.99) for r in busy])
    quiet_p99 = Spread.of([percentile(r, 0.99) for r in quiet])
    busy_p50 = Spread.of([percentile(r, 0.50) for r in busy])
    quiet_p50 = Spread.of([percentile(r, 0.50) for r in quiet])
    arriving = f"at {pace:,} events/s" if pace else "as a backlog (pipelined)"
    result = StageResult(STAGE)
    result.figures.append(
        Figure(
            STAGE,
            f"p99 ms at {rate} req/s while a {daos:,}-DAO run's events arrive {arriving}"
            " (limit: the same API's p99, quiet, same process)",
            "ms",
            busy_p99.median,
            quiet_p99.median,
            GOAL,
            higher_is_better=False,
            goal_text=f"≤ {GOAL:.0f}× the quiet p99",
            note=spread_note(busy_p99, quiet_p99, "{:.1f}"),
        )
    )
    counts = ", ".join(f"{len(b)}/{len(q)}" for b, q in zip(busy, quiet, strict=True))
    result.details.append(
        f"history API under ingest ({rate} req/s, {daos:,} DAOs, ms per round): busy p99"
        f" {busy_p99.text('{:.1f}')}, quiet p99 {quiet_p99.text('{:.1f}')}; busy p50"
        f" {busy_p50.text('{:.1f}')}, quiet p50 {quiet_p50.text('{:.1f}')}; requests"
        f" busy/quiet per round {counts}; busy max {max(max(b) for b in busy):.0f} ms"
    )
    return result


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
