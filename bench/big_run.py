"""Stage 6, a big run: 20,000 DAOs on the ``file`` source until the ledger shows the job complete.

Reported without a goal: on the file source a DAO is scored in well under a millisecond, so
this compares CPU-bound work sharing the machine's cores, not the cost of monitoring (the
monitoring-CPU and slow-hub stages measure that). The limit: the recalculator's own run in
this process (scoring, score rows and outbox rows) with no broker and no ledger (the run built
by ``build_recalculation`` on a pool of its own), timed around ``Recalculation.run``. Ours: the real
``recalculator run`` process (relaying its outbox) with ``job-ledger serve`` already running,
timed the same way from the run's start (the job's ``started_at``, so the process's start-up
counts for neither side) until the bench sees the ledger's ``job_logs`` row complete. The sides
alternate for several rounds.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
import orjson
from pydantic import SecretStr

from bench.common import Endpoints, StageResult, stage_cli
from bench.rounds import DEFAULT_ROUNDS, Spread, interleaved, spread_figure
from bench.stage_env import (
    ledger_env,
    ledger_server,
    scratch_schema,
    scratch_topology,
    service_env,
    stage_logs,
)
from chassis.database import create_pool
from recalculator.bootstrap import build_recalculation, migrate_schema, open_pool
from recalculator.config import Settings
from recalculator.daos import DaoRecord
from recalculator.jobs import JobStore
from recalculator.registry import import_daos
from recalculator.run import RunRequest
from tests.harness.ports import ReservedPort
from tests.harness.processes import ServiceProcess, started, wait_http_ok

STAGE = "big run"
DEFAULT_DAOS = 20_000
JOB_NAME = "weekly-gvs-recalculation"


def write_inputs(folder: Path, daos: int) -> tuple[list[DaoRecord], Path]:
    """The DAO records and a governance file with three proposals for each DAO."""
    as_of = datetime(2025, 6, 2, tzinfo=UTC)
    records = [
        DaoRecord(id=f"dao-{i:05d}", name=f"DAO {i}", snapshot_space=f"dao{i}.eth")
        for i in range(daos)
    ]
    governance = {
        "as_of": as_of.isoformat(),
        "daos": {
            r.id: {
                "followers_count": 1000 + i,
                "proposals": [
                    {
                        "id": f"0x{i:05x}{p}",
                        "created": (as_of - timedelta(days=5 + 20 * p)).isoformat(),
                        "end": (as_of - timedelta(days=2 + 20 * p)).isoformat(),
                        "state": "closed",
                        "votes": 50 + (i * 7 + p) % 900,
                        "scores_total": 1000.0,
                        "choices": ["For", "Against"],
                        "scores": [600.0 + p * 10, 400.0 - p * 10],
                    }
                    for p in range(3)
                ],
            }
            for i, r in enumerate(records)
        },
    }
    path = folder / "governance.json"
    path.write_bytes(orjson.dumps(governance))
    return records, path


def settings_for(endpoints: Endpoints, schema: str, data: Path, **extra: str) -> Settings:
    return Settings(
        database_url=endpoints.database_url,
        amqp_url=SecretStr(endpoints.amqp_url),
        recalc_schema=schema,
        governance_source="file",
        governance_data=data,
        **extra,  # type: ignore[arg-type]
    )


async def prepare(endpoints: Endpoints, schema: str, data: Path, records: list[DaoRecord]) -> None:
    """Migrate ``schema`` and register the DAOs."""
    settings = settings_for(endpoints, schema, data)
    await migrate_schema(settings)
    pool = await create_pool(endpoints.database_url, schema, max_size=2)
    try:
        await import_daos(pool, records)
    finally:
        await pool.close()


async def scoring_limit(endpoints: Endpoints, schema: str, data: Path) -> tuple[float, int]:
    """Time one run with no broker and no ledger; returns (seconds, DAOs processed)."""
    settings = settings_for(endpoints, schema, data)
    async with open_pool(settings) as pool, aiohttp.ClientSession() as session:
        store = JobStore(pool, settings.events_exchange)
        recalculation = build_recalculation(settings, pool, session, store)
        begun = time.perf_counter()
        outcome = await recalculation.run(RunRequest(JOB_NAME, "manual"))
        elapsed = time.perf_counter() - begun
    if outcome.finished is None or outcome.status != "completed":
        raise RuntimeError(f"the scoring run ended {outcome.status}: {outcome.message}")
    return elapsed, outcome.finished.daos_processed


async def wait_complete(
    ledger_pool: asyncpg.Pool, processes: list[ServiceProcess], timeout_s: float
) -> asyncpg.Record:
    """Wait for a complete ``job_logs`` row; raise ``RuntimeError`` with logs otherwise."""
    deadline = time.monotonic() + timeout_s
    while True:
        row = await ledger_pool.fetchrow(
            "SELECT status::text AS status, daos_processed, daos_total, events_received,"
            " started_at"
            " FROM job_logs WHERE expected_events IS NOT NULL"
            " AND events_received = expected_events"
        )
        if row is not None:
            return row
        for process in processes:
            if process.name.startswith("job-ledger") and not process.running:
                raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(
                "the ledger never showed the job complete:\n"
                + "\n".join(p.log_tail(10) for p in processes)
            )
        await asyncio.sleep(0.1)


async def _scoring_round(endpoints: Endpoints, data: Path, records: list[DaoRecord]) -> float:
    async with scratch_schema(endpoints.database_url, "big_bare") as schema:
        await prepare(endpoints, schema, data, records)
        seconds, _ = await scoring_limit(endpoints, schema, data)
    return seconds


async def _monitored_round(
    endpoints: Endpoints, data: Path, records: list[DaoRecord], logs: Path
) -> float:
    """One ``recalculator run`` beside ``job-ledger serve``; seconds from the job's start
    until the ledger shows it complete."""
    daos = len(records)
    async with (
        scratch_topology(endpoints.amqp_url, "big") as topology,
        scratch_schema(endpoints.database_url, "big_recalc") as recalc_schema,
        scratch_schema(endpoints.database_url, "big_ledger") as ledger_schema,
        ReservedPort() as reserved,
    ):
        await prepare(endpoints, recalc_schema, data, records)
        port = reserved.port
        env = ledger_env(endpoints, topology, ledger_schema)
        ledger = ledger_server("job-ledger-big", port, env, logs)
        recalculator = ServiceProcess(
            "recalculator-big",
            ["recalculator", "run"],
            service_env(
                endpoints,
                topology,
                recalc_schema=recalc_schema,
                governance_source="file",
                governance_data=str(data),
            ),
            logs,
        )
        async with started(ledger):
            await wait_http_ok(f"http://127.0.0.1:{port}/healthz", ledger, timeout_s=60)
            pool = await create_pool(endpoints.database_url, ledger_schema, max_size=1)
            try:
                async with started(recalculator):
                    row = await wait_complete(pool, [ledger, recalculator], 900)
                    # The same clock as the recalculator's started_at: this machine's.
                    ours_s = (datetime.now(UTC) - row["started_at"]).total_seconds()
                    code = await recalculator.wait(120)
            finally:
                await pool.close()
    if code != 0 or row["daos_processed"] != daos or row["status"] != "completed":
        raise RuntimeError(f"recalculator exited {code}; ledger row {dict(row)}")
    return float(ours_s)


async def run(
    endpoints: Endpoints,
    daos: int = DEFAULT_DAOS,
    log_dir: Path | None = None,
    rounds: int = DEFAULT_ROUNDS,
) -> StageResult:
    """The scoring alone, then the real recalculator beside the real ledger, in turn."""
    result = StageResult(STAGE)
    with (
        tempfile.TemporaryDirectory(prefix="bench-big-") as folder,
        stage_logs(log_dir) as logs,
    ):
        records, data = await asyncio.to_thread(write_inputs, Path(folder), daos)
        limits, ourses = await interleaved(
            rounds,
            lambda _: _scoring_round(endpoints, data, records),
            lambda _: _monitored_round(endpoints, data, records, logs),
        )
    limit, ours = Spread.of(limits), Spread.of(ourses)
    result.figures.append(
        spread_figure(
            STAGE,
            f"seconds, {daos:,}-DAO run on the file source until the ledger shows it complete,"
            " against the scoring alone (CPU-bound: both share this machine's cores)",
            "s",
            ours,
            limit,
            None,
            "(reported, no goal)",
            higher_is_better=False,
            fmt="{:.1f}",
        )
    )
    result.details.append(
        f"big run ({daos:,} DAOs, seconds per round): scoring alone {limit.text('{:.1f}')},"
        f" with relay and ledger {ours.text('{:.1f}')}"
    )
    return result


if __name__ == "__main__":
    stage_cli(__doc__, run, daos=DEFAULT_DAOS, rounds=DEFAULT_ROUNDS)
