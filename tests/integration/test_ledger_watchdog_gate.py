"""The watchdog judges only what the ledger has caught up on, wired as `job-ledger serve` does.

Each test builds the ledger through its composition root (``bootstrap``) on the real broker and
database, leaves events waiting in the ledger's queue as an outage would, moves the clock past
``JOB_STALE_AFTER`` or a slot's grace, and checks what the watchdog does before and after the
consumer folded the backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
from croniter import croniter

from contracts.codec import parse_event
from contracts.events import (
    Event,
    JobAbandoned,
    JobFinished,
    JobFinishedPayload,
    JobStarted,
    JobStartedPayload,
)
from job_ledger.bootstrap import Ledger, bootstrap
from job_ledger.config import Settings
from job_ledger.recording import record_events
from job_ledger.watchdog import CheckReport
from tests.harness.stack import Stack
from tests.support.broker import drain, eventually, tap_exchange
from tests.support.ledger import JOB_NAME, job_events, publish

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
STALE_AFTER = timedelta(minutes=30)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def ledger_settings(stack: Stack, **overrides: object) -> Settings:
    topology = stack.topology
    options: dict[str, object] = {
        "database_url": stack.database_url,
        "amqp_url": stack.amqp_url,
        "ledger_schema": stack.schema,
        "events_exchange": topology.exchange,
        "ledger_queue": topology.ledger_queue,
        "notifier_queue": topology.notifier_queue,
        "commands_queue": topology.commands_queue,
        "job_schedule": "0 0 1 1 *",  # no slot falls in these tests unless they say so
        "job_stale_after": STALE_AFTER,
        "watchdog_settle": timedelta(milliseconds=300),
        **overrides,
    }
    return Settings(**options)  # type: ignore[arg-type]


def timed(events: list[Event], start: datetime) -> list[Event]:
    """``events`` one second apart from ``start``."""
    return [
        e.model_copy(update={"occurred_at": start + timedelta(seconds=n)})
        for n, e in enumerate(events)
    ]


def finished(job_id: uuid.UUID, sequence: int, at: datetime) -> JobFinished:
    return JobFinished(
        job_id=job_id,
        job_name=JOB_NAME,
        sequence=sequence,
        occurred_at=at,
        payload=JobFinishedPayload(
            status="completed",
            daos_total=sequence - 1,
            daos_processed=sequence - 1,
            daos_failed=0,
            duration_ms=5000,
            cache_invalidated=True,
            fatal_error=None,
            failures=[],
        ),
    )


async def fold(pool: asyncpg.Pool, events: list[Event]) -> None:
    """What a ledger process folded before it went down."""
    async with pool.acquire() as conn, conn.transaction():
        await record_events(conn, events)


@contextlib.asynccontextmanager
async def consuming(ledger: Ledger) -> AsyncIterator[None]:
    await ledger.consumer.start()
    task = asyncio.create_task(ledger.consumer.run())
    try:
        yield
    finally:
        await ledger.consumer.stop()
        await asyncio.wait_for(task, 30)


async def judged(ledger: Ledger) -> CheckReport:
    """The first check that judged (the backlog folded and the consumer settled)."""
    return await eventually(ledger.watchdog.check_once, lambda r: r.waiting is None)


async def judged_with_backlog_folded(ledger: Ledger) -> CheckReport:
    """Attach the consumer to fold the queued backlog; return the first check that judged,
    once the relay has published all it holds (the consumer stopped again)."""
    async with consuming(ledger):
        report = await judged(ledger)
    assert await ledger.relay.drain(timeout_s=10) == 0
    return report


async def test_a_job_whose_finish_waited_in_the_queue_is_completed_not_abandoned(
    stack: Stack,
    pool: asyncpg.Pool,
) -> None:
    abandons = await tap_exchange(stack.amqp, stack.topology, "#.job.abandoned")
    job_id = uuid.uuid4()
    run = timed(job_events(job_id, 3), T0)
    await fold(pool, run)
    # The ledger is down: the run's JobFinished waits in its queue past JOB_STALE_AFTER.
    await publish(stack.amqp, stack.topology, [finished(job_id, 3, T0 + timedelta(seconds=5))])
    clock = Clock(T0 + 2 * STALE_AFTER)

    settings = ledger_settings(stack)
    async with bootstrap(settings, clock=clock) as ledger:
        before = await ledger.watchdog.check_once()
        assert before.abandoned == [], "judged while the job's JobFinished was still queued"
        assert before.waiting == f"the consumer is not attached to {stack.topology.ledger_queue}"
        report = await judged_with_backlog_folded(ledger)

    assert report.abandoned == []
    status = await pool.fetchval("SELECT status::text FROM job_logs WHERE id = $1", job_id)
    assert status == "completed"
    assert await drain(abandons) == [], "no JobAbandoned went out"


async def test_a_slot_whose_job_started_waited_in_the_queue_is_not_missed(
    stack: Stack,
    pool: asyncpg.Pool,
) -> None:
    misses = await tap_exchange(stack.amqp, stack.topology, "#.job.missed")
    installed = await pool.fetchval("SELECT min(applied_at) FROM schema_migrations")
    slot = croniter("0 * * * *", installed).get_next(datetime).astimezone(UTC)
    job_id = uuid.uuid4()
    started = JobStarted(
        job_id=job_id,
        job_name=JOB_NAME,
        occurred_at=slot + timedelta(minutes=5),
        payload=JobStartedPayload(daos_total=10, trigger="cron"),
    )
    # The ledger is down; the run started in time.
    await publish(stack.amqp, stack.topology, [started])
    clock = Clock(slot + timedelta(hours=1, minutes=1))  # the slot's grace (1h) is over

    settings = ledger_settings(
        stack,
        job_schedule="0 * * * *",
        job_stale_after=timedelta(hours=3),
    )
    async with bootstrap(settings, clock=clock) as ledger:
        before = await ledger.watchdog.check_once()
        assert before.missed == [], "judged the slot while its JobStarted was still queued"
        report = await judged_with_backlog_folded(ledger)

    assert (report.started, report.missed) == ([slot], [])
    assert await drain(misses) == [], "no JobMissed went out"
    outcome = await pool.fetchval(
        "SELECT outcome FROM schedule_checks WHERE scheduled_for = $1", slot
    )
    assert outcome == "started"


async def test_a_job_that_died_while_the_ledger_was_down_is_abandoned_once_folded(
    stack: Stack,
    pool: asyncpg.Pool,
) -> None:
    abandons = await tap_exchange(stack.amqp, stack.topology, "#.job.abandoned")
    job_id = uuid.uuid4()
    run = timed(job_events(job_id, 5, fail_every=100), T0)
    await fold(pool, run[:2])
    # Its last events, then the worker died: no finish.
    await publish(stack.amqp, stack.topology, run[2:])
    clock = Clock(T0 + 2 * STALE_AFTER)

    settings = ledger_settings(stack)
    async with bootstrap(settings, clock=clock) as ledger:
        assert (await ledger.watchdog.check_once()).abandoned == []
        report = await judged_with_backlog_folded(ledger)

    assert report.abandoned == [job_id]
    row = await pool.fetchrow(
        "SELECT status::text, outcome, daos_processed FROM job_logs WHERE id = $1", job_id
    )
    assert tuple(row or ()) == ("failed", "abandoned", 4), "abandoned after the backlog folded"
    [message] = await drain(abandons)
    event = parse_event(message.body)
    assert isinstance(event, JobAbandoned)
    assert event.payload.last_event_at == T0 + timedelta(seconds=4), "its last queued event"


async def test_the_watchdog_waits_for_the_settle_time_after_the_consumer_attached(
    stack: Stack,
    pool: asyncpg.Pool,
) -> None:
    await tap_exchange(stack.amqp, stack.topology)
    job_id = uuid.uuid4()
    await fold(pool, timed(job_events(job_id, 2), T0))
    clock = Clock(T0 + 2 * STALE_AFTER)

    settings = ledger_settings(
        stack,
        watchdog_settle=timedelta(hours=1),
    )
    async with bootstrap(settings, clock=clock) as ledger, consuming(ledger):
        report = await ledger.watchdog.check_once()

    assert report.abandoned == []
    assert report.waiting is not None and "settling for 3600s" in report.waiting
    status = await pool.fetchval("SELECT status::text FROM job_logs WHERE id = $1", job_id)
    assert status == "running"


async def test_the_watchdog_waits_for_the_batch_in_the_consumers_hands_to_commit(
    stack: Stack,
    pool: asyncpg.Pool,
) -> None:
    job_id = uuid.uuid4()
    run = timed(job_events(job_id, 3), T0)
    await fold(pool, run)
    clock = Clock(T0 + 2 * STALE_AFTER)

    settings = ledger_settings(stack)
    async with bootstrap(settings, clock=clock) as ledger, consuming(ledger):
        async with pool.acquire() as holder, holder.transaction():
            # The job's row is locked: the consumer's batch with its JobFinished cannot commit.
            await holder.execute("SELECT 1 FROM job_logs WHERE id = $1 FOR UPDATE", job_id)
            await publish(stack.amqp, stack.topology, [finished(job_id, 3, T0)])
            await eventually(lambda: _received(ledger), lambda n: n >= 1)
            await asyncio.sleep(0.4)  # past the settle time: only the commit is awaited
            check = asyncio.create_task(ledger.watchdog.check_once())
            await asyncio.sleep(0.5)
            assert not check.done(), "judged while the consumer held an uncommitted JobFinished"
        report = await check

    assert report.waiting is None and report.abandoned == []
    status = await pool.fetchval("SELECT status::text FROM job_logs WHERE id = $1", job_id)
    assert status == "completed"


async def _received(ledger: Ledger) -> int:
    return ledger.consumer.progress.received
