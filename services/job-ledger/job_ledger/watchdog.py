"""The watchdog: stale running jobs become failed (JobAbandoned), missed slots give JobMissed.

It judges only what it has caught up on: each check first asks its gate
(:mod:`job_ledger.catch_up`) whether the ledger's queue still holds a backlog, the consumer
still holds uncommitted messages, or the consumer (re)attached too recently; if so it logs why
it waits and judges nothing until a later check. A job that really died while the ledger was
down is abandoned at the first check after its backlog is folded.

A missed slot becomes a ``job_logs`` row (outcome ``missed``) in the same transaction; such a
row is no run, so it never counts as one that started near a slot.

What the ledger publishes goes through its own outbox, written in the transaction that records
the decision, and the event is stored and folded in that same transaction: when the ledger later
consumes its own JobAbandoned from the queue, the event store sees a duplicate and nothing
changes. Event ids are derived (uuid5) from what they are about, so two ledger processes, or a
restart, never publish the same decision twice.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
from croniter import croniter

from chassis.database import Connection
from chassis.outbox import enqueue
from chassis.retry import describe, is_transient_database_error
from contracts.codec import encode_event
from contracts.events import (
    JobAbandoned,
    JobAbandonedPayload,
    JobMissed,
    JobMissedPayload,
    routing_key,
    utc_now,
)
from job_ledger import metrics
from job_ledger.catch_up import CatchUp
from job_ledger.recording import record_events

log = logging.getLogger(__name__)

LEDGER_NAMESPACE = uuid.UUID("5f1c4d0e-8a7b-5c3e-9d2f-6b1a0e4c7d93")
"""Namespace of the ids the ledger derives; never change it (restarts would repeat alerts)."""

FIRST_START_LOOKBACK = timedelta(days=7)
"""How far back the first check looks for missed slots (later checks resume where it stopped)."""

MAX_SLOTS_PER_CHECK = 1000


def abandoned_event_id(job_id: uuid.UUID) -> uuid.UUID:
    """A job is abandoned at most once: its status is never ``running`` again afterwards."""
    return uuid.uuid5(LEDGER_NAMESPACE, f"abandoned:{job_id}")


def missed_ids(job_name: str, slot: datetime) -> tuple[uuid.UUID, uuid.UUID]:
    """``(job_id, event_id)`` of the JobMissed for ``job_name``'s ``slot``."""
    key = f"{job_name}:{slot.astimezone(UTC).isoformat()}"
    return uuid.uuid5(LEDGER_NAMESPACE, f"missed-job:{key}"), uuid.uuid5(LEDGER_NAMESPACE, key)


@dataclass
class CheckReport:
    """What one :meth:`Watchdog.check_once` decided; ``waiting`` says why it judged nothing."""

    abandoned: list[uuid.UUID] = field(default_factory=list)
    missed: list[datetime] = field(default_factory=list)
    started: list[datetime] = field(default_factory=list)
    waiting: str | None = None


class Watchdog:
    """Checks every ``interval`` (with an injectable clock) for stale jobs and missed slots."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        exchange: str,
        *,
        gate: CatchUp,
        job_name: str,
        schedule: str,
        grace: timedelta,
        stale_after: timedelta,
        interval: timedelta,
        clock: Callable[[], datetime] = utc_now,
        lookback: timedelta = FIRST_START_LOOKBACK,
        watching_since: datetime | None = None,
        on_enqueued: Callable[[], None] = lambda: None,
    ) -> None:
        self._pool = pool
        self._exchange = exchange
        self._gate = gate
        self._job_name = job_name
        self._schedule = schedule
        self._grace = grace
        self._stale_after = stale_after
        self._interval_s = interval.total_seconds()
        self._clock = clock
        self._lookback = min(lookback, FIRST_START_LOOKBACK)
        self._watching_since = watching_since
        self._on_enqueued = on_enqueued

    async def run(self) -> None:
        """Check every ``interval`` until cancelled; a check the database is away for is
        logged and skipped (the next one retries); raises any other error."""
        while True:
            try:
                await self.check_once()
            except Exception as exc:
                if not is_transient_database_error(exc):
                    raise
                log.warning("watchdog check skipped, database unavailable: %s", describe(exc))
            await asyncio.sleep(self._interval_s)

    async def check_once(self) -> CheckReport:
        """Once caught up, abandon stale jobs and record schedule slots; refresh the jobs gauge.

        Returns the decisions, or a report whose ``waiting`` says why nothing was judged.
        Idempotent: a decision already recorded is not taken again.
        """
        waiting = await self._gate.wait_reason()
        if waiting is not None:
            metrics.WATCHDOG_CAUGHT_UP.set(0)
            log.info("watchdog waits before judging: %s", waiting)
            await self._refresh_gauge()
            return CheckReport(waiting=waiting)
        metrics.WATCHDOG_CAUGHT_UP.set(1)
        report = CheckReport(abandoned=await self.abandon_stale_jobs())
        report.started, report.missed = await self.check_schedule()
        await self._refresh_gauge()
        if report.abandoned or report.missed:
            self._on_enqueued()
        return report

    async def abandon_stale_jobs(self) -> list[uuid.UUID]:
        """Mark failed every running job silent for ``stale_after``; publish JobAbandoned.

        Returns the jobs abandoned now. Rows another ledger process is deciding are skipped.
        """
        now = self._clock()
        abandoned: list[uuid.UUID] = []
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, job_name, last_event_at FROM job_logs"
                " WHERE status = 'running' AND last_event_at < $1"
                " ORDER BY id FOR UPDATE SKIP LOCKED",
                now - self._stale_after,
            )
            for row in rows:
                event = JobAbandoned(
                    event_id=abandoned_event_id(row["id"]),
                    job_id=row["id"],
                    job_name=row["job_name"],
                    occurred_at=now,
                    payload=JobAbandonedPayload(
                        last_event_at=row["last_event_at"],
                        stale_after_s=int(self._stale_after.total_seconds()),
                    ),
                )
                if await self._record_and_publish(conn, event):
                    abandoned.append(row["id"])
        for job_id in abandoned:
            metrics.JOBS_ABANDONED.inc()
            log.warning(
                "job silent for %s: marked failed, JobAbandoned published",
                self._stale_after,
                extra={"job_id": job_id, "event_id": abandoned_event_id(job_id)},
            )
        return abandoned

    async def check_schedule(self) -> tuple[list[datetime], list[datetime]]:
        """Check every slot whose grace has passed since the last check; ``(started, missed)``.

        The first check ever looks back at most ``lookback``, and never before the ledger was
        installed (its first migration, or ``watching_since``); later ones resume after the last
        slot recorded in ``schedule_checks``, so a restart neither repeats nor skips a slot.
        """
        now = self._clock()
        started: list[datetime] = []
        missed: list[datetime] = []
        async with self._pool.acquire() as conn, conn.transaction():
            # One checker at a time per job name, across ledger processes.
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext('job-ledger-schedule:' || $1))",
                self._job_name,
            )
            slots = croniter(self._schedule, await self._schedule_cursor(conn, now))
            for _ in range(MAX_SLOTS_PER_CHECK):
                slot = slots.get_next(datetime).astimezone(UTC)
                if slot + self._grace > now:
                    break
                if await self._slot_started(conn, slot):
                    started.append(slot)
                elif await self._record_missed(conn, slot, now):
                    missed.append(slot)
        for slot in missed:
            metrics.RUNS_MISSED.inc()
            log.warning(
                "no %s run started by %s + %s: JobMissed published",
                self._job_name,
                slot.isoformat(),
                self._grace,
                extra={"job_id": missed_ids(self._job_name, slot)[0]},
            )
        return started, missed

    async def _schedule_cursor(self, conn: Connection, now: datetime) -> datetime:
        """The time after which slots are still to check: the last slot recorded, or for the
        first check ever ``lookback`` ago but not before the ledger was installed."""
        cursor: datetime | None = await conn.fetchval(
            "SELECT max(scheduled_for) FROM schedule_checks WHERE job_name = $1",
            self._job_name,
        )
        if cursor is not None:
            return cursor
        # Slots from before the ledger was installed are none of its business: a fresh
        # install on a Tuesday must not greet the admin with "Monday's run was missed".
        since = self._watching_since or await conn.fetchval(
            "SELECT min(applied_at) FROM schema_migrations"
        )
        return max(now - self._lookback, since or now)

    async def _slot_started(self, conn: Connection, slot: datetime) -> bool:
        """Record in ``schedule_checks`` whether a run started within ``slot``'s grace (a
        missed slot's own row is no run); return whether one did."""
        ran = bool(
            await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM job_logs WHERE job_name = $1"
                " AND started_at BETWEEN $2 AND $3 AND outcome <> 'missed')",
                self._job_name,
                slot - self._grace,
                slot + self._grace,
            )
        )
        await conn.execute(
            "INSERT INTO schedule_checks (job_name, scheduled_for, outcome)"
            " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            self._job_name,
            slot,
            "started" if ran else "missed",
        )
        return ran

    async def _record_missed(self, conn: Connection, slot: datetime, now: datetime) -> bool:
        """Record and publish the JobMissed of ``slot``; False if it was recorded already."""
        job_id, event_id = missed_ids(self._job_name, slot)
        event = JobMissed(
            event_id=event_id,
            job_id=job_id,
            job_name=self._job_name,
            occurred_at=now,
            payload=JobMissedPayload(scheduled_for=slot, grace_s=int(self._grace.total_seconds())),
        )
        return await self._record_and_publish(conn, event)

    async def _record_and_publish(self, conn: Connection, event: JobAbandoned | JobMissed) -> bool:
        result = await record_events(conn, [event])
        if not result.inserted:
            return False
        await enqueue(conn, self._exchange, routing_key(event), encode_event(event))
        return True

    async def _refresh_gauge(self) -> None:
        counts = {"running": 0, "completed": 0, "failed": 0}
        for row in await self._pool.fetch("SELECT status, count(*) AS n FROM job_logs GROUP BY 1"):
            counts[str(row["status"])] = int(row["n"])
        for status, n in counts.items():
            metrics.JOBS_BY_STATUS.labels(status).set(n)
