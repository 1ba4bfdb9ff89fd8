"""Retention on the real database: what each service prunes, in batches, and what it keeps.

The ledger's job history goes from ``job_logs`` and the event store together, so that the real
``job-ledger rebuild`` still finds them consistent after a prune.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from prometheus_client import REGISTRY

from chassis.database import create_pool
from chassis.retention import PruneRule, Retention
from chassis.settings import load_settings
from contracts.events import (
    Event,
    JobFinished,
    JobFinishedPayload,
    JobStarted,
    JobStartedPayload,
    NotificationFailed,
    NotificationFailedPayload,
)
from job_ledger.config import Settings as LedgerSettings
from job_ledger.recording import record_events
from job_ledger.retention import ledger_retention
from notifier.config import Settings as NotifierSettings
from notifier.retention import notifier_retention
from notifier.service import migrate_schema
from tests.harness.processes import SCRIPTS, run_command
from tests.harness.stack import Stack
from tests.support.broker import eventually
from tests.support.notifier_harness import running_notifier

NOW = datetime.now(UTC)


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def pruned(table: str) -> float:
    return REGISTRY.get_sample_value("retention_pruned_rows_total", {"table": table}) or 0.0


async def test_a_rule_deletes_in_batches_until_no_old_row_is_left(pool: asyncpg.Pool) -> None:
    await pool.execute("CREATE TABLE marks (id int PRIMARY KEY, at timestamptz NOT NULL)")
    await pool.executemany(
        "INSERT INTO marks VALUES ($1, $2)",
        [(i, days_ago(10 if i < 7 else 1)) for i in range(10)],
    )
    rule = PruneRule(
        "marks",
        timedelta(days=5),
        "DELETE FROM marks WHERE ctid IN"
        " (SELECT ctid FROM marks WHERE at < now() - $1::interval LIMIT $2)",
    )
    before = pruned("marks")
    retention = Retention(pool, [rule], interval=timedelta(hours=1), batch_size=2, pause_s=0)

    assert await retention.prune_once() == {"marks": 7}
    assert [r["id"] for r in await pool.fetch("SELECT id FROM marks ORDER BY id")] == [7, 8, 9]
    assert pruned("marks") - before == 7
    assert await retention.prune_once() == {"marks": 0}


async def test_schedule_checks_go_but_each_job_names_latest_slot_stays(
    stack: Stack, pool: asyncpg.Pool
) -> None:
    rows = [("weekly", days_ago(d)) for d in (200, 150, 100, 1)] + [("monthly", days_ago(200))]
    await pool.executemany(
        "INSERT INTO schedule_checks (job_name, scheduled_for, outcome) VALUES ($1, $2, 'started')",
        rows,
    )
    settings = load_settings(LedgerSettings, **stack.ledger_env(), SCHEDULE_CHECK_RETENTION="90d")

    assert await ledger_retention(settings, pool).prune_once() == {"schedule_checks": 3}
    kept = await pool.fetch("SELECT job_name, scheduled_for FROM schedule_checks ORDER BY 1")
    assert [(r["job_name"], r["scheduled_for"]) for r in kept] == [
        ("monthly", days_ago(200)),
        ("weekly", days_ago(1)),
    ]


def run(job_name: str, days: float, status: str | None) -> list[Event]:
    """A run of ``job_name`` started ``days`` ago: finished with ``status``, or still running."""
    job_id = uuid.uuid4()
    started = days_ago(days)
    events: list[Event] = [
        JobStarted(
            job_id=job_id,
            job_name=job_name,
            occurred_at=started,
            payload=JobStartedPayload(daos_total=0, trigger="cron"),
        )
    ]
    if status is not None:
        payload = JobFinishedPayload(
            status=status,
            daos_total=0,
            daos_processed=0,
            daos_failed=0,
            duration_ms=1000,
            cache_invalidated=False,
        )
        events.append(
            JobFinished(
                job_id=job_id,
                job_name=job_name,
                sequence=1,
                occurred_at=started + timedelta(seconds=1),
                payload=payload,
            )
        )
    return events


def failed_email(job: list[Event]) -> NotificationFailed:
    return NotificationFailed(
        job_id=job[0].job_id,
        job_name=job[0].job_name,
        occurred_at=job[-1].occurred_at,
        payload=NotificationFailedPayload(channel="email", kind="failure", attempts=3, error="x"),
    )


async def job_ids(pool: asyncpg.Pool, table: str, column: str) -> set[uuid.UUID]:
    return {r[0] for r in await pool.fetch(f"SELECT DISTINCT {column} FROM {table}")}


@pytest.mark.parametrize("retention", ["", "90d"])
async def test_job_history_goes_from_job_logs_and_the_event_store_together(
    stack: Stack, pool: asyncpg.Pool, retention: str
) -> None:
    old_completed = run("weekly", 200, "completed")
    old_failed = run("weekly", 150, "failed")
    newest_completed = run("weekly", 120, "completed")
    newest = run("weekly", 100, "failed")
    running = run("weekly", 200, None)
    other_name = run("monthly", 200, "completed")
    jobs = [old_completed, old_failed, newest_completed, newest, running, other_name]
    async with pool.acquire() as conn, conn.transaction():
        await record_events(conn, [e for job in jobs for e in job] + [failed_email(old_failed)])
    env = stack.ledger_env()
    settings = load_settings(LedgerSettings, **env, JOB_HISTORY_RETENTION=retention)

    await ledger_retention(settings, pool).prune_once()

    if retention:
        gone = {old_completed[0].job_id, old_failed[0].job_id}
    else:
        gone = set()
    kept = {job[0].job_id for job in jobs} - gone
    assert await job_ids(pool, "job_logs", "id") == kept
    assert await job_ids(pool, "job_events", "job_id") == kept
    assert await job_ids(pool, "job_notifications", "job_id") == (
        set() if retention else {old_failed[0].job_id}
    )
    code, out, err = await run_command(
        [str(SCRIPTS / "job-ledger"), "rebuild"], {"PATH": "/usr/bin:/bin", **env}
    )
    assert (code, out.strip()) == (0, "job_logs matches the event store"), err


async def test_the_notifier_prunes_old_marks_and_finished_records_but_no_pending_one(
    stack: Stack,
) -> None:
    settings: NotifierSettings = stack.notifier_settings()
    await migrate_schema(settings.database_url, settings.notifier_schema)
    pool = await create_pool(settings.database_url, settings.notifier_schema)
    try:
        await pool.executemany(
            "INSERT INTO processed_events (event_id, event_type, job_id, processed_at)"
            " VALUES ($1, 'JobFinished', $1, $2)",
            [(uuid.uuid4(), days_ago(d)) for d in (100, 95, 91, 89, 1)],
        )
        await pool.executemany(
            "INSERT INTO deliveries (job_id, channel, kind, state, job_name, event_id,"
            " event_type, alert, next_attempt_at, updated_at)"
            " VALUES ($1, 'email', 'failure', $2, 'weekly', $1, 'JobFinished', '{}', $3, $4)",
            [
                (uuid.uuid4(), state, NOW + timedelta(days=1), days_ago(d))
                for state, d in (("sent", 100), ("failed", 95), ("skipped", 91), ("pending", 100))
                + (("sent", 1),)
            ],
        )

        counts = await notifier_retention(settings, pool).prune_once()

        assert counts == {"processed_events": 3, "deliveries": 3}
        assert await pool.fetchval(
            "SELECT array_agg(round(extract(epoch FROM now() - processed_at) / 86400)"
            " ORDER BY processed_at) FROM processed_events"
        ) == [89, 1]
        remaining = await pool.fetch("SELECT state FROM deliveries ORDER BY updated_at")
        assert [r["state"] for r in remaining] == ["pending", "sent"]
    finally:
        await pool.close()


async def test_the_running_notifier_prunes_by_itself(stack: Stack) -> None:
    settings: NotifierSettings = stack.notifier_settings()
    await migrate_schema(settings.database_url, settings.notifier_schema)
    pool = await create_pool(settings.database_url, settings.notifier_schema)
    try:
        await pool.executemany(
            "INSERT INTO processed_events (event_id, event_type, job_id, processed_at)"
            " VALUES ($1, 'JobFinished', $1, $2)",
            [(uuid.uuid4(), days_ago(d)) for d in (120, 100, 1)],
        )
        before = pruned("processed_events")
        async with running_notifier(settings):
            left = await eventually(
                lambda: pool.fetchval("SELECT count(*) FROM processed_events"),
                lambda n: n == 1,
            )
        assert (left, pruned("processed_events") - before) == (1, 2)
    finally:
        await pool.close()
