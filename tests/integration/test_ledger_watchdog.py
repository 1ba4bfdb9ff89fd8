"""The watchdog with short settings and a clock the test moves: JobAbandoned and JobMissed.

The ledger counts as caught up here (its gate is tested through the composition root in
``test_ledger_watchdog_gate``).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from aio_pika.abc import AbstractRobustConnection

from chassis.database import create_pool
from chassis.outbox import OutboxRelay, pending_count
from contracts.codec import parse_event
from contracts.events import JobAbandoned, JobMissed, JobMissedPayload
from contracts.topology import BrokerNames
from job_ledger.event_store import insert_events
from job_ledger.job_logs import load_rows
from job_ledger.rebuild import rebuild
from job_ledger.recording import record_events
from job_ledger.watchdog import Watchdog, missed_ids
from tests.support.broker import collect, eventually, tap_exchange
from tests.support.ledger import consuming, job_events

MONDAY = datetime(2026, 3, 2, tzinfo=UTC)  # a slot of "0 0 * * 1"
GRACE = timedelta(hours=1)
STALE_AFTER = timedelta(minutes=30)


class CaughtUp:
    """The watchdog's gate when nothing waits in the queue or in the consumer's hands."""

    async def wait_reason(self) -> str | None:
        return None


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def watchdog(
    pool: asyncpg.Pool, topology: BrokerNames, clock: Clock, **overrides: object
) -> Watchdog:
    options: dict[str, object] = {
        "gate": CaughtUp(),
        "job_name": "weekly-gvs-recalculation",
        "schedule": "0 0 * * 1",
        # The fake clock lives in the past of the real install time of the test schema.
        "watching_since": datetime(2000, 1, 1, tzinfo=UTC),
        "grace": GRACE,
        "stale_after": STALE_AFTER,
        "interval": timedelta(seconds=1),
        "clock": clock,
        **overrides,
    }
    return Watchdog(pool, topology.exchange, **options)  # type: ignore[arg-type]


async def fold_started_job(pool: asyncpg.Pool, at: datetime, count: int = 3) -> uuid.UUID:
    job_id = uuid.uuid4()
    events = job_events(job_id, count)
    for n, event in enumerate(events):
        events[n] = event.model_copy(update={"occurred_at": at + timedelta(seconds=n)})
    async with pool.acquire() as conn, conn.transaction():
        await record_events(conn, events)
    return job_id


async def test_a_silent_running_job_is_failed_once_and_its_abandon_is_published(
    pool: asyncpg.Pool, amqp: AbstractRobustConnection, topology: BrokerNames
) -> None:
    tap = await tap_exchange(amqp, topology, "#.job.abandoned")
    clock = Clock(MONDAY + timedelta(minutes=10))
    stale = await fold_started_job(pool, MONDAY)
    fresh = await fold_started_job(pool, MONDAY + timedelta(minutes=5))
    dog = watchdog(pool, topology, clock, schedule="0 0 1 1 *")

    clock.now = MONDAY + timedelta(minutes=33)  # stale: last event 00:00:02; fresh: 00:05:02
    report = await dog.check_once()
    assert report.abandoned == [stale]
    assert (await dog.check_once()).abandoned == [], "a job is abandoned once"

    async with pool.acquire() as conn:
        rows = await load_rows(conn)
    assert (rows[stale].status, rows[stale].abandoned_at, rows[stale].completed_at) == (
        "failed",
        clock.now,
        clock.now,
    )
    assert rows[fresh].status == "running"

    relay = OutboxRelay(pool, amqp)
    assert await relay.drain(timeout_s=10) == 0
    [message] = await collect(tap, 1)
    event = parse_event(message.body)
    assert isinstance(event, JobAbandoned)
    assert (event.job_id, event.payload.stale_after_s) == (stale, 1800)
    assert event.payload.last_event_at == MONDAY + timedelta(seconds=2)

    # The ledger consumes its own JobAbandoned: a duplicate of what it stored, nothing changes.
    async with consuming(pool, amqp, topology):
        await eventually(lambda: amqp_queue_depth(amqp, topology.ledger_queue), lambda n: n == 0)
    async with pool.acquire() as conn:
        assert await load_rows(conn) == rows
    assert await rebuild(pool) == []


async def amqp_queue_depth(connection: AbstractRobustConnection, name: str) -> int:
    channel = await connection.channel()
    try:
        declared = await channel.declare_queue(name, passive=True)
        return int(declared.declaration_result.message_count or 0)
    finally:
        await channel.close()


async def test_a_slot_with_no_run_gives_one_job_missed_even_across_restarts(
    pool: asyncpg.Pool, amqp: AbstractRobustConnection, topology: BrokerNames
) -> None:
    tap = await tap_exchange(amqp, topology, "#.job.missed")
    clock = Clock(MONDAY + GRACE - timedelta(seconds=1))

    assert (await watchdog(pool, topology, clock).check_once()).missed == [], "grace not over"
    clock.now = MONDAY + GRACE + timedelta(seconds=1)
    assert (await watchdog(pool, topology, clock).check_once()).missed == [MONDAY]
    # A restart (a new watchdog over the same schedule_checks) does not repeat it.
    assert (await watchdog(pool, topology, clock).check_once()).missed == []

    relay = OutboxRelay(pool, amqp)
    assert await relay.drain(timeout_s=10) == 0
    [message] = await collect(tap, 1)
    event = parse_event(message.body)
    assert isinstance(event, JobMissed)
    job_id, event_id = missed_ids("weekly-gvs-recalculation", MONDAY)
    assert (event.event_id, event.job_id) == (event_id, job_id)
    assert (event.payload.scheduled_for, event.payload.grace_s) == (MONDAY, 3600)
    missed_row = await pool.fetchrow(
        "SELECT status::text, outcome, started_at, scheduled_for, trigger, fatal_error"
        " FROM job_logs WHERE id = $1",
        job_id,
    )
    assert tuple(missed_row or ()) == (
        "failed",
        "missed",
        MONDAY,
        MONDAY,
        "cron",
        "No run started within 1h of the slot scheduled for 2026-03-02 00:00 UTC.",
    )

    # The next Monday's run starts 10 minutes late: within the grace, so nothing is missed.
    next_monday = MONDAY + timedelta(days=7)
    await fold_started_job(pool, next_monday + timedelta(minutes=10))
    clock.now = next_monday + timedelta(hours=2)
    report = await watchdog(pool, topology, clock, stale_after=timedelta(hours=3)).check_once()
    assert (report.started, report.missed, report.abandoned) == ([next_monday], [], [])
    assert await pending_count(pool) == 0
    outcomes = await pool.fetch("SELECT scheduled_for, outcome FROM schedule_checks ORDER BY 1")
    assert [tuple(r) for r in outcomes] == [(MONDAY, "missed"), (next_monday, "started")]


async def test_the_first_check_looks_back_no_further_than_the_lookback(
    pool: asyncpg.Pool, topology: BrokerNames
) -> None:
    clock = Clock(MONDAY + timedelta(days=30))
    dog = watchdog(pool, topology, clock, schedule="0 * * * *", lookback=timedelta(hours=3))
    report = await dog.check_once()
    # Slots at -3h (excluded: the lookback starts there), -2h and -1h; the current one is in grace.
    assert report.missed == [clock.now - timedelta(hours=2), clock.now - timedelta(hours=1)]
    assert await pending_count(pool) == 2


async def test_slots_before_the_ledger_was_installed_are_never_reported_missed(
    pool: asyncpg.Pool, topology: BrokerNames
) -> None:
    installed = await pool.fetchval("SELECT min(applied_at) FROM schema_migrations")
    clock = Clock(installed + timedelta(hours=3))
    dog = watchdog(pool, topology, clock, schedule="0 * * * *", watching_since=None)

    report = await dog.check_once()

    # Hourly slots: the week before the install stays silent; the slots after it whose grace
    # (1h) is over are reported, once each.
    first = installed.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    assert report.missed == [first, first + timedelta(hours=1)]


async def test_a_missed_slot_does_not_count_as_a_run_near_the_next_slot(
    pool: asyncpg.Pool, topology: BrokerNames
) -> None:
    clock = Clock(MONDAY + timedelta(hours=1, minutes=1))
    dog = watchdog(pool, topology, clock, schedule="0 * * * *", lookback=timedelta(minutes=90))
    assert (await dog.check_once()).missed == [MONDAY]

    # The next slot's window (slot +- grace) holds the missed slot's row, dated from its slot.
    clock.now = MONDAY + timedelta(hours=2, minutes=1)
    report = await dog.check_once()
    assert (report.started, report.missed) == ([], [MONDAY + timedelta(hours=1)])


async def test_rebuild_adds_the_row_of_a_slot_missed_before_missed_slots_had_rows(
    pool: asyncpg.Pool,
) -> None:
    job_id, event_id = missed_ids("weekly-gvs-recalculation", MONDAY)
    missed = JobMissed(
        event_id=event_id,
        job_id=job_id,
        job_name="weekly-gvs-recalculation",
        occurred_at=MONDAY + GRACE,
        payload=JobMissedPayload(scheduled_for=MONDAY, grace_s=3600),
    )
    async with pool.acquire() as conn, conn.transaction():
        await insert_events(conn, [missed])  # stored, never folded: what an older ledger left

    [difference] = await rebuild(pool)

    assert (difference.job_id, difference.live) == (job_id, None)
    assert await pool.fetchval("SELECT outcome FROM job_logs WHERE id = $1", job_id) == "missed"
    assert await rebuild(pool) == []


async def test_a_check_the_database_is_away_for_is_skipped_and_the_next_one_judges(
    database_url: str, schema: str, pool: asyncpg.Pool, topology: BrokerNames
) -> None:
    stale = await fold_started_job(pool, MONDAY)
    clock = Clock(MONDAY + 2 * STALE_AFTER)
    # A pool whose connections are gone: every check meets the outage (InterfaceError).
    away = await create_pool(database_url, schema)
    await away.close()
    outage = watchdog(away, topology, clock, interval=timedelta(milliseconds=50))
    running = asyncio.create_task(outage.run())
    await asyncio.sleep(0.3)
    assert not running.done(), "the outage ended the watchdog"
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running

    report = await watchdog(pool, topology, clock).check_once()
    assert report.abandoned == [stale]


async def test_a_check_that_fails_for_another_reason_ends_the_watchdog(
    pool: asyncpg.Pool, topology: BrokerNames
) -> None:
    class Broken:
        async def wait_reason(self) -> str | None:
            raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError, match="a bug"):
        await asyncio.wait_for(watchdog(pool, topology, Clock(MONDAY), gate=Broken()).run(), 5)
