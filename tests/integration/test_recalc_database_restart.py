"""Postgres restarted under a worker's run: the run still ends in JobFinished, every DAO is
scored (a DAO's transaction that the restart broke is retried), sequences stay contiguous, and
the worker takes the next command by itself."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import asyncpg
from prometheus_client import REGISTRY

from chassis.database import create_pool
from contracts import Event, JobFinished, RunRequested, parse_event
from contracts.events import utc_now
from recalculator.daos import DaoRef
from recalculator.jobs import JobStore
from recalculator.scoring import GovernanceData, score_governance
from recalculator.trigger import publish_run_request
from recalculator.worker import Worker
from tests.harness.stack import Stack
from tests.support.broker import drain, eventually, tap_exchange
from tests.support.postgres import ensure_postgres_started, restart_postgres
from tests.support.recalc import seed_daos

DAOS = 48
GATED_FROM = 40  # DAOs from this index on wait until Postgres is back: the run is mid-run then


class SlowSource:
    """Answers every DAO after ``delay_s``; DAOs from ``GATED_FROM`` on also wait for ``gate``,
    so the run is certainly still going when Postgres has come back."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.gate = asyncio.Event()
        self.gate.set()

    async def fetch(self, dao: DaoRef, since: datetime) -> GovernanceData:
        await asyncio.sleep(self.delay_s)
        if int(dao.id.removeprefix("dao-")) >= GATED_FROM:
            await self.gate.wait()
        return GovernanceData(dao_id=dao.id)


async def job_rows(database_url: str, schema: str) -> list[asyncpg.Record]:
    try:
        conn = await asyncpg.connect(database_url, timeout=5)
    except (OSError, asyncpg.PostgresError):
        return []  # not back yet
    try:
        return await conn.fetch(
            f"SELECT id, status, daos_processed, daos_failed, fatal_error, request_id,"
            f' (SELECT count(*) FROM "{schema}".gvs_scores s WHERE s.job_id = j.id) AS scores'
            f' FROM "{schema}".jobs j ORDER BY started_at'
        )
    finally:
        await conn.close()


def retries() -> float:
    return REGISTRY.get_sample_value("recalc_database_retries_total") or 0.0


def by_job(events: Sequence[Event]) -> dict[UUID, list[Event]]:
    """Each run's sequenced events (not its request's RunAccepted), in sequence order."""
    # At least once: a batch whose confirm the outage swallowed may come twice; dedupe by id.
    unique = {e.event_id: e for e in events if e.sequence is not None}.values()
    jobs: dict[UUID, list[Event]] = {}
    for event in sorted(unique, key=lambda e: (str(e.job_id), e.sequence or 0)):
        jobs.setdefault(event.job_id, []).append(event)
    return jobs


async def test_a_postgres_restart_mid_run_still_finishes_the_run_and_the_next_one(
    stack: Stack,
) -> None:
    tap = await tap_exchange(stack.amqp, stack.topology)
    settings = stack.recalc_settings(dao_concurrency=4)
    await seed_daos(settings, DAOS)
    source = SlowSource(delay_s=0.1)
    worker = Worker(settings, source=source)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    first = RunRequested(job_name=settings.job_name, trigger="manual")
    second = RunRequested(job_name=settings.job_name, trigger="retry")
    retries_before = retries()
    try:
        await asyncio.wait_for(worker.ready.wait(), 20)
        source.gate.clear()
        await publish_run_request(stack.amqp, stack.topology, first)
        await eventually(
            lambda: job_rows(stack.database_url, stack.schema),
            lambda rows: len(rows) == 1 and rows[0]["daos_processed"] >= 4,
        )
        await asyncio.to_thread(restart_postgres)
        [row] = await job_rows(stack.database_url, stack.schema)
        assert row["status"] == "running", "the restart came in the middle of the run"
        source.gate.set()

        rows = await eventually(
            lambda: job_rows(stack.database_url, stack.schema),
            lambda rows: len(rows) == 1 and rows[0]["status"] != "running",
            timeout_s=60,
        )
        await publish_run_request(stack.amqp, stack.topology, second)
        rows = await eventually(
            lambda: job_rows(stack.database_url, stack.schema),
            lambda rows: len(rows) == 2 and rows[1]["status"] != "running",
            timeout_s=60,
        )
    finally:
        await asyncio.to_thread(ensure_postgres_started)
        stop.set()
        await asyncio.wait_for(task, 30)

    assert retries() > retries_before, "the run did meet the outage"
    # No DAO was lost to the restart: its broken transaction was retried, not counted failed.
    assert [
        (r["request_id"], r["status"], r["daos_processed"], r["daos_failed"], r["scores"])
        for r in rows
    ] == [
        (first.request_id, "completed", DAOS, 0, DAOS),
        (second.request_id, "completed", DAOS, 0, DAOS),
    ]
    events = by_job([parse_event(m.body) for m in await drain(tap, 1.0)])
    assert list(events) == sorted((r["id"] for r in rows), key=str)
    for job_events in events.values():
        assert [e.sequence for e in job_events] == list(range(DAOS + 2)), "contiguous, none lost"
        finished = job_events[-1]
        assert isinstance(finished, JobFinished)
        assert (finished.payload.status, finished.payload.daos_processed) == ("completed", DAOS)
        assert finished.payload.fatal_error is None
        dao_ids = sorted(getattr(e.payload, "dao_id", "") for e in job_events[1:-1])
        assert dao_ids == [f"dao-{i:02}" for i in range(DAOS)], "each DAO reported once"


async def test_a_step_retried_after_its_commit_writes_its_event_once(stack: Stack) -> None:
    """What a retry does when the restart cut the answer to a COMMIT that did commit."""
    settings = stack.recalc_settings()
    await seed_daos(settings, 2)
    pool = await create_pool(stack.database_url, stack.schema)
    try:
        store = JobStore(pool, stack.topology.exchange)
        job_id = await store.start_job(
            job_name=settings.job_name, trigger="manual", daos_total=2, started_at=utc_now()
        )
        assert job_id is not None
        ok = DaoRef(id="dao-00", name="DAO 0", snapshot_space="dao-00.eth")
        bad = DaoRef(id="dao-01", name="DAO 1", snapshot_space="dao-01.eth")
        score = score_governance(GovernanceData(dao_id=ok.id), now=utc_now())
        twice = [
            await store.record_dao_processed(
                job_id=job_id,
                job_name=settings.job_name,
                dao=ok,
                score=score,
                duration_ms=5,
                computed_at=utc_now(),
            )
            for _ in range(2)
        ]
        failed = [
            await store.record_dao_failed(
                job_id=job_id, job_name=settings.job_name, dao=bad, error="HTTP 500", attempts=3
            )
            for _ in range(2)
        ]
        finished = [
            await store.finish_job(
                job_id=job_id,
                job_name=settings.job_name,
                duration_ms=9,
                cache_invalidated=True,
                fatal_error=None,
                finished_at=utc_now(),
            )
            for _ in range(2)
        ]
        kinds = await pool.fetch("SELECT routing_key FROM outbox ORDER BY id")
    finally:
        await pool.close()
    assert twice == [1, None], "the second DaoProcessed was not written"
    assert failed == [2, None], "the second DaoFailed was not written"
    assert finished[0] == finished[1], "the second finish returns what the first committed"
    assert (finished[0].daos_processed, finished[0].daos_failed) == (1, 1)
    assert [k["routing_key"].split(".", 1)[1] for k in kinds] == [
        "job.started",
        "dao.processed",
        "dao.failed",
        "job.finished",
    ]
