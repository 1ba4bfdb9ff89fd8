"""Stage 8, a run against a slow hub: does monitoring slow the run the admin waits for?

The real ``recalculator run`` process scores 2,000 DAOs from a Snapshot hub stand-in (the
tests' loopback hub, answering every request after a realistic 150 ms) with the default
``DAO_CONCURRENCY``. The limit: the run with nothing consuming its events (the relay still
publishes them, the queues keep them), timed from the job's ``started_at`` to its
``finished_at``. Ours: the same run with ``job-ledger serve`` and ``notifier serve`` running,
timed from the job's ``started_at`` until the bench sees the ledger's ``job_logs`` row
complete. The sides alternate for several rounds, each in fresh schemas and processes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from bench.alert_latency import LoopbackResend
from bench.big_run import wait_complete
from bench.common import Endpoints, StageResult, stage_cli
from bench.rounds import DEFAULT_ROUNDS, Spread, spread_figure
from bench.stage_env import (
    interleaved_on_empty_queues,
    ledger_env,
    ledger_server,
    scratch_schema,
    scratch_topology,
    service_env,
    stage_logs,
)
from chassis.database import create_pool
from contracts.topology import BrokerNames
from recalculator.bootstrap import migrate_schema
from recalculator.config import Settings
from recalculator.daos import DaoRecord
from recalculator.registry import import_daos
from tests.harness.ports import ReservedPort
from tests.harness.processes import ServiceProcess, started, wait_http_ok
from tests.support.snapshot_hub import HubSpace, SnapshotHub, hub_proposal

STAGE = "run against a slow hub"
DEFAULT_DAOS = 2_000
DEFAULT_LATENCY_MS = 150
GOAL = 1.05


def hub_spaces(daos: int) -> tuple[list[DaoRecord], list[HubSpace]]:
    """``daos`` registry records and their spaces, three recent proposals each."""
    now = int(datetime.now(UTC).timestamp())
    records, spaces = [], []
    for i in range(daos):
        space = f"dao{i}.eth"
        records.append(DaoRecord(id=f"dao-{i:05d}", name=f"DAO {i}", snapshot_space=space))
        proposals = [
            hub_proposal(space, f"0x{i:05x}{p}", created=now - (5 + 20 * p) * 86_400)
            for p in range(3)
        ]
        spaces.append(HubSpace(space, proposals=proposals, followers_count=1000 + i))
    return records, spaces


async def prepare_registry(endpoints: Endpoints, schema: str, records: list[DaoRecord]) -> None:
    """Migrate ``schema`` and register the DAOs."""
    settings = Settings(
        database_url=endpoints.database_url,
        amqp_url=SecretStr(endpoints.amqp_url),
        recalc_schema=schema,
    )
    await migrate_schema(settings)
    pool = await create_pool(endpoints.database_url, schema, max_size=1)
    try:
        await import_daos(pool, records)
    finally:
        await pool.close()


def _recalculator(
    endpoints: Endpoints, topology: BrokerNames, schema: str, hub_url: str, logs: Path
) -> ServiceProcess:
    env = service_env(
        endpoints,
        topology,
        recalc_schema=schema,
        governance_source="snapshot",
        snapshot_hub_url=hub_url,
        # The loopback hub has no limit to respect: pacing would measure the limiter instead.
        snapshot_rate_limit="1000000",
    )
    return ServiceProcess(f"recalculator-{schema}", ["recalculator", "run"], env, logs)


async def _job_times(endpoints: Endpoints, schema: str) -> Any:
    pool = await create_pool(endpoints.database_url, schema, max_size=1)
    try:
        return await pool.fetchrow(
            "SELECT status::text AS status, started_at, finished_at FROM jobs"
        )
    finally:
        await pool.close()


async def run_alone(
    endpoints: Endpoints, topology: BrokerNames, records: list[DaoRecord], hub: str, logs: Path
) -> float:
    """Seconds from the job's start to its finish with nothing consuming its events."""
    async with scratch_schema(endpoints.database_url, "hub_alone") as schema:
        await prepare_registry(endpoints, schema, records)
        recalculator = _recalculator(endpoints, topology, schema, hub, logs)
        async with started(recalculator):
            code = await recalculator.wait(900)
        row = await _job_times(endpoints, schema)
    if code != 0 or row is None or row["status"] != "completed":
        raise RuntimeError(f"recalculator exited {code}; job {row}:\n{recalculator.log_tail()}")
    return float((row["finished_at"] - row["started_at"]).total_seconds())


async def run_monitored(
    endpoints: Endpoints, topology: BrokerNames, records: list[DaoRecord], hub: str, logs: Path
) -> float:
    """Seconds from the job's start until the ledger shows it complete, with the ledger and
    the notifier (on a loopback Resend) running."""
    url = endpoints.database_url
    async with (
        scratch_schema(url, "hub_recalc") as schema,
        scratch_schema(url, "hub_ledger") as ledger_schema,
        scratch_schema(url, "hub_notifier") as notifier_schema,
        LoopbackResend().serving() as resend,
        ReservedPort() as ledger_reserved,
        ReservedPort() as notifier_reserved,
    ):
        await prepare_registry(endpoints, schema, records)
        ledger_port, notifier_port = ledger_reserved.port, notifier_reserved.port
        env = ledger_env(endpoints, topology, ledger_schema)
        ledger = ledger_server("job-ledger-hub", ledger_port, env, logs)
        notifier = ServiceProcess(
            "hub-notifier",
            ["notifier", "serve", "--port", str(notifier_port)],
            service_env(
                endpoints,
                topology,
                notifier_schema=notifier_schema,
                resend_api_key="re_bench",
                resend_api_url=resend.url,
                alert_email_to="ops@example.test",
                health_host="127.0.0.1",
            ),
            logs,
        )
        recalculator = _recalculator(endpoints, topology, schema, hub, logs)
        async with started(ledger), started(notifier):
            await wait_http_ok(f"http://127.0.0.1:{ledger_port}/healthz", ledger, timeout_s=60)
            await wait_http_ok(f"http://127.0.0.1:{notifier_port}/healthz", notifier, timeout_s=60)
            pool = await create_pool(url, ledger_schema, max_size=1)
            try:
                async with started(recalculator):
                    row = await wait_complete(pool, [ledger, recalculator], 900)
                    seen = datetime.now(UTC)
                    code = await recalculator.wait(120)
            finally:
                await pool.close()
    if code != 0 or row["status"] != "completed" or row["daos_processed"] != len(records):
        raise RuntimeError(f"recalculator exited {code}; ledger row {dict(row)}")
    return float((seen - row["started_at"]).total_seconds())


async def run(
    endpoints: Endpoints,
    daos: int = DEFAULT_DAOS,
    latency_ms: int = DEFAULT_LATENCY_MS,
    log_dir: Path | None = None,
    rounds: int = DEFAULT_ROUNDS,
) -> StageResult:
    """Time the run alone and monitored, in turn, ``rounds`` times."""
    records, spaces = hub_spaces(daos)
    with stage_logs(log_dir) as logs:
        async with (
            SnapshotHub(spaces, latency_s=latency_ms / 1000) as hub,
            scratch_topology(endpoints.amqp_url, "hub-alone") as alone,
            scratch_topology(endpoints.amqp_url, "hub") as monitored,
        ):

            async def limit(_: int) -> float:
                return await run_alone(endpoints, alone, records, hub.url, logs)

            async def ours(_: int) -> float:
                return await run_monitored(endpoints, monitored, records, hub.url, logs)

            limits, ourses = await interleaved_on_empty_queues(
                endpoints.amqp_url, "bench-hub", rounds, (limit, alone), (ours, monitored)
            )
    limit_s, ours_s = Spread.of(limits), Spread.of(ourses)
    result = StageResult(STAGE)
    result.figures.append(
        spread_figure(
            STAGE,
            f"seconds, {daos:,}-DAO run, hub answering after {latency_ms} ms, default"
            " DAO_CONCURRENCY: with the ledger and notifier (until the ledger shows it"
            " complete) against without them",
            "s",
            ours_s,
            limit_s,
            GOAL,
            f"≤ {GOAL}× the run without them",
            higher_is_better=False,
            fmt="{:.1f}",
        )
    )
    result.details.append(
        f"run against a slow hub ({daos:,} DAOs, {latency_ms} ms, seconds per round): without"
        f" ledger and notifier {limit_s.text('{:.1f}')}, with them {ours_s.text('{:.1f}')}"
    )
    return result


if __name__ == "__main__":
    stage_cli(__doc__, run, daos=DEFAULT_DAOS, latency_ms=DEFAULT_LATENCY_MS, rounds=DEFAULT_ROUNDS)
