"""The real ``job-ledger serve``: the figures an operator alerts on, and its own pruning.

The figures come from the database: after real runs (completed, failed, missed, one running),
a failed alert and a dead letter, ``/metrics`` says what happened, and says the same after a
restart.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
from prometheus_client.parser import text_string_to_metric_families

from chassis.topology import dead_letter_queue
from contracts.events import (
    Event,
    JobFinished,
    JobFinishedPayload,
    JobMissed,
    JobMissedPayload,
    JobStarted,
    JobStartedPayload,
    NotificationFailed,
    NotificationFailedPayload,
)
from tests.harness.processes import ServiceProcess, running, wait_http_ok
from tests.harness.stack import Stack
from tests.support.broker import eventually
from tests.support.ledger import publish, publish_raw

JOB = "figures-job"
Figures = dict[tuple[str, tuple[tuple[str, str], ...]], float]


NOW = datetime.now(UTC).replace(microsecond=0)


def at(minutes_ago: int) -> datetime:
    return NOW - timedelta(minutes=minutes_ago)


def finished_run(started: datetime, status: str, duration_s: int) -> list[Event]:
    job_id = uuid.uuid4()
    payload = JobFinishedPayload(
        status=status,
        daos_total=0,
        daos_processed=0,
        daos_failed=0,
        duration_ms=duration_s * 1000,
        cache_invalidated=False,
    )
    return [
        JobStarted(
            job_id=job_id,
            job_name=JOB,
            occurred_at=started,
            payload=JobStartedPayload(daos_total=0, trigger="cron"),
        ),
        JobFinished(
            job_id=job_id,
            job_name=JOB,
            sequence=1,
            occurred_at=started + timedelta(seconds=duration_s),
            payload=payload,
        ),
    ]


async def scrape(http: aiohttp.ClientSession, base: str) -> Figures:
    """The ledger's figures on ``/metrics``: (sample name, sorted labels) → value."""
    async with http.get(f"{base}/metrics") as response:
        text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith(("ledger_job_", "ledger_dead_letter"))
    }


async def test_the_figures_say_what_happened_and_the_same_after_a_restart(
    stack: Stack, tmp_path: Path
) -> None:
    env = {
        **stack.ledger_env(),
        "ADMIN_PASSWORD": "correct horse battery staple",
        "LEDGER_METRICS_INTERVAL": "200ms",
    }
    port = stack.port()
    base = f"http://127.0.0.1:{port}"
    completed = finished_run(at(300), "completed", 600)
    failed = finished_run(at(200), "failed", 30)
    slot = at(100)
    missed = JobMissed(
        job_id=uuid.uuid4(),
        job_name=JOB,
        payload=JobMissedPayload(scheduled_for=slot, grace_s=3600),
    )
    going = JobStarted(
        job_id=uuid.uuid4(),
        job_name=JOB,
        occurred_at=at(5),
        payload=JobStartedPayload(daos_total=3, trigger="manual"),
    )
    alert_failed = NotificationFailed(
        job_id=failed[0].job_id,
        job_name=JOB,
        payload=NotificationFailedPayload(channel="email", kind="failure", attempts=5, error="x"),
    )
    label = (("job_name", JOB),)
    dead_queue = dead_letter_queue(stack.topology.ledger_queue)
    expected: Figures = {
        ("ledger_job_first_seen_timestamp_seconds", label): at(300).timestamp(),
        ("ledger_job_last_success_timestamp_seconds", label): (
            at(300) + timedelta(seconds=600)
        ).timestamp(),
        ("ledger_job_last_failure_timestamp_seconds", label): (
            at(200) + timedelta(seconds=30)
        ).timestamp(),
        ("ledger_job_running_since_timestamp_seconds", label): at(5).timestamp(),
        ("ledger_job_duration_p95_seconds", label): 600.0,
        ("ledger_job_last_run_info", (("job_name", JOB), ("status", "running"))): 1.0,
        ("ledger_job_runs_missed_total", label): 1.0,
        ("ledger_job_notifications_failed_total", (("channel", "email"), *label)): 1.0,
        ("ledger_job_notifications_failed_total", (("channel", "slack"), *label)): 0.0,
        ("ledger_dead_letter_messages", (("queue", dead_queue),)): 1.0,
    }
    process = ServiceProcess(
        "job-ledger", ["job-ledger", "serve", "--port", str(port)], env, tmp_path
    )
    async with running(process), aiohttp.ClientSession() as http:
        await wait_http_ok(f"{base}/readyz", process)
        await publish(stack.amqp, stack.topology, [*completed, *failed, missed, going])
        await publish(stack.amqp, stack.topology, [alert_failed])
        await publish_raw(stack.amqp, stack.topology, b"not json", f"{JOB}.job.started", "bad-1")

        def ours(figures: Figures) -> Figures:
            return {key: value for key, value in figures.items() if key in expected}

        before = ours(await eventually(lambda: scrape(http, base), lambda f: ours(f) == expected))

        assert await process.stop() == 0, process.log_tail()
        await process.start()
        await wait_http_ok(f"{base}/readyz", process)
        after = ours(await scrape(http, base))
    assert after == before == expected


async def test_the_ledger_prunes_old_schedule_checks_by_itself_and_counts_them(
    stack: Stack, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    await pool.executemany(
        "INSERT INTO schedule_checks (job_name, scheduled_for, outcome) VALUES ($1, $2, 'missed')",
        [(JOB, at(60 * 24 * days)) for days in (120, 100, 2)],
    )
    env = {**stack.ledger_env(), "SCHEDULE_CHECK_RETENTION": "30d"}
    port = stack.port()
    base = f"http://127.0.0.1:{port}"
    process = ServiceProcess(
        "job-ledger", ["job-ledger", "serve", "--role", "fold", "--port", str(port)], env, tmp_path
    )
    async with running(process), aiohttp.ClientSession() as http:
        await wait_http_ok(f"{base}/readyz", process)
        kept = await eventually(
            lambda: pool.fetch(
                "SELECT scheduled_for FROM schedule_checks WHERE job_name = $1", JOB
            ),
            lambda rows: len(rows) == 1,
        )
        async with http.get(f"{base}/metrics") as response:
            text = await response.text()
    assert [r["scheduled_for"] for r in kept] == [at(60 * 24 * 2)]
    assert 'retention_pruned_rows_total{table="schedule_checks"} 2.0' in text
