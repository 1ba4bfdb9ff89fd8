"""Stage 4, the history API: ``GET /api/admin/job-logs?limit=30`` over many jobs, under wrk.

The limit: ``python -m bench.bare api``, a bare starlette endpoint running the same SQL
through the same pool and uvicorn embedding. Ours: the real ``job-ledger serve``. Both run at
once; each gets a warm-up, then ``wrk`` (a second process, 2 threads, 50 connections) loads
them in turn, three rounds, and the best round of each side counts.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from bench.common import Endpoints, Figure, StageResult, stage_cli
from bench.stage_env import (
    ADMIN_PASSWORD,
    ledger_env,
    ledger_server,
    scratch_schema,
    scratch_topology,
    service_env,
    stage_logs,
)
from chassis.database import migrate
from chassis.outbox import MIGRATIONS as OUTBOX_MIGRATIONS
from job_ledger.migrations import MIGRATIONS as LEDGER_MIGRATIONS
from tests.harness.ports import ReservedPort
from tests.harness.processes import ServiceProcess, started, wait_http_ok

STAGE = "history API"
DEFAULT_JOBS = 100_000
DEFAULT_SECONDS = 10
DEFAULT_ROUNDS = 3
PASSWORD = ADMIN_PASSWORD
PATH = "/api/admin/job-logs?limit=30"

_SEED = """
INSERT INTO job_logs (id, job_name, started_at, completed_at, status, daos_processed, daos_total,
                      errors, duration_ms, cache_invalidated, trigger, daos_failed,
                      last_event_at, last_sequence, events_received, expected_events,
                      has_started)
SELECT gen_random_uuid(), 'weekly-gvs-recalculation', now() - g * interval '1 hour',
       now() - g * interval '1 hour' + interval '61 seconds',
       (CASE WHEN g % 10 = 0 THEN 'failed' ELSE 'completed' END)::job_status,
       CASE WHEN g % 10 = 0 THEN 40 ELSE 98 END, 100,
       CASE WHEN g % 10 = 0 THEN
           '[{"daoId": "dao-1", "daoName": "DAO 1", "error": "HTTP 502 from the hub"}]'::jsonb
       END,
       61000, true, 'cron', CASE WHEN g % 10 = 0 THEN 60 ELSE 2 END,
       now() - g * interval '1 hour' + interval '61 seconds', 101, 102, 102, true
FROM generate_series(1, $1::int) AS g
"""


@dataclass(frozen=True)
class Load:
    """What wrk measured."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse_wrk(output: str) -> Load:
    """Read requests/s, p50, p99, request and error counts from ``wrk --latency`` output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    total = re.search(r"(\d+) requests in", output)
    if not (rps and p50 and p99 and total):
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(r"Socket errors:.*", output)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    if socket_errors:
        errors += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(0)))
    return Load(
        float(rps.group(1)), _ms(p50.group(1)), _ms(p99.group(1)), int(total.group(1)), errors
    )


async def wrk(url: str, seconds: int, connections: int = 50) -> Load:
    """Run ``wrk`` against ``url`` with the admin's bearer token; raises on errors."""
    binary = shutil.which("wrk") or "/usr/bin/wrk"
    process = await asyncio.create_subprocess_exec(
        binary,
        "-t2",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        "10s",
        "-H",
        f"Authorization: Bearer {PASSWORD}",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    load = parse_wrk(out.decode(errors="replace"))
    if load.errors:
        raise RuntimeError(f"{load.errors} failed requests of {load.requests} at {url}")
    return load


async def seed(database_url: str, schema: str, jobs: int) -> None:
    """A ledger schema with ``jobs`` finished jobs, analysed."""
    await migrate(database_url, schema, [OUTBOX_MIGRATIONS, LEDGER_MIGRATIONS])
    conn = await asyncpg.connect(database_url, server_settings={"search_path": schema})
    try:
        await conn.execute(_SEED, jobs)
        await conn.execute("ANALYZE job_logs")
    finally:
        await conn.close()


async def _best_of(
    bare: tuple[ServiceProcess, int], ours: tuple[ServiceProcess, int], seconds: int, rounds: int
) -> tuple[Load, Load]:
    """Load both servers in turn, ``rounds`` times; return each one's best run (by req/s).

    Interleaving and keeping the best of each side is what makes the ratio mean something
    when other work shares the machine: a burst of it hurts one run, not a whole side.
    """
    urls = []
    for process, port in (bare, ours):
        await wait_http_ok(f"http://127.0.0.1:{port}/healthz", process, timeout_s=60)
        urls.append(f"http://127.0.0.1:{port}{PATH}")
        await wrk(urls[-1], 1)  # warm-up: pool connections, statement caches
    runs: tuple[list[Load], list[Load]] = ([], [])
    for _ in range(rounds):
        for url, found in zip(urls, runs, strict=True):
            found.append(await wrk(url, seconds))
    best_bare, best_ours = (max(found, key=lambda load: load.requests_per_s) for found in runs)
    return best_bare, best_ours


async def run(
    endpoints: Endpoints,
    jobs: int = DEFAULT_JOBS,
    seconds: int = DEFAULT_SECONDS,
    log_dir: Path | None = None,
    rounds: int = DEFAULT_ROUNDS,
) -> StageResult:
    """Seed ``jobs`` jobs; load the bare endpoint and ours in turn, ``rounds`` × ``seconds``."""
    result = StageResult(STAGE)
    async with (
        scratch_topology(endpoints.amqp_url, "api") as topology,
        scratch_schema(endpoints.database_url, "api") as schema,
        ReservedPort() as bare_reserved,
        ReservedPort() as reserved,
    ):
        await seed(endpoints.database_url, schema, jobs)
        with stage_logs(log_dir) as logs:
            bare_port, port = bare_reserved.port, reserved.port
            bare = ServiceProcess(
                "bare-api",
                [
                    sys.executable,
                    "-m",
                    "bench.bare",
                    "api",
                    "--schema",
                    schema,
                    "--port",
                    str(bare_port),
                ],
                service_env(endpoints, topology),
                logs,
            )
            env = ledger_env(endpoints, topology, schema, log_level="WARNING")
            ledger = ledger_server("job-ledger-api", port, env, logs)
            async with started(bare), started(ledger):
                limit, ours = await _best_of((bare, bare_port), (ledger, port), seconds, rounds)
    label = f"{jobs:,} jobs, 50 connections, best of {rounds} × {seconds}s"
    result.figures += [
        Figure(
            STAGE,
            f"req/s, {label}",
            "req/s",
            ours.requests_per_s,
            limit.requests_per_s,
            0.7,
            goal_text="≥ 70% of the limit",
        ),
        Figure(
            STAGE,
            "p99 latency (ms)",
            "ms",
            ours.p99_ms,
            limit.p99_ms,
            1.5,
            higher_is_better=False,
            goal_text="≤ 1.5× the limit's",
        ),
        Figure(
            STAGE,
            "p50 latency (ms)",
            "ms",
            ours.p50_ms,
            limit.p50_ms,
            None,
            higher_is_better=False,
            goal_text="(reported)",
        ),
    ]
    result.details.append(
        f"history API: limit {limit.requests_per_s:,.0f} req/s p50 {limit.p50_ms:.1f} ms"
        f" p99 {limit.p99_ms:.1f} ms; ours {ours.requests_per_s:,.0f} req/s"
        f" p50 {ours.p50_ms:.1f} ms p99 {ours.p99_ms:.1f} ms"
    )
    return result


if __name__ == "__main__":
    stage_cli(__doc__, run, jobs=DEFAULT_JOBS, seconds=DEFAULT_SECONDS)
