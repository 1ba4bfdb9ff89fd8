"""The SQL reads behind the API and the pages, returning the typed rows of ``rows``.

Every function takes a connection whose ``search_path`` is the ledger schema, reads only,
and is therefore idempotent. JSON columns are read as text and decoded in Python, so the
result does not depend on whichever jsonb codec the pool was given.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson

from chassis.database import Connection
from job_ledger.web.figures import STATS_WINDOW
from job_ledger.web.rows import (
    HistoryCursor,
    HistoryPage,
    JobLog,
    Notification,
    RunSample,
    ScheduleCheck,
    StoredEvent,
)

_SELECTED_AS = {"status": "status::text AS status", "errors_json": "errors::text AS errors_json"}
_JOB_COLUMNS = ", ".join(
    _SELECTED_AS.get(f.name, f.name) for f in fields(JobLog) if f.name != "notifications"
)
"""What a ``job_logs`` read selects: :class:`JobLog`'s fields, in order (a row unpacks into it)."""


def _job_log(record: Any, notifications: tuple[Notification, ...]) -> JobLog:
    # Positional: a page of 30 rows builds 30 of these per request (the history API's hot
    # path), and unpacking the record costs a fraction of 21 lookups by name.
    return JobLog(*record, notifications=notifications)


async def _notifications(conn: Connection, job_ids: list[UUID]) -> dict[UUID, list[Notification]]:
    rows = await conn.fetch(
        "SELECT job_id, channel, kind, state, attempts, provider_id, error, occurred_at, reason"
        " FROM job_notifications WHERE job_id = ANY($1::uuid[])"
        " ORDER BY occurred_at, channel, kind",
        job_ids,
    )
    found: dict[UUID, list[Notification]] = {}
    for r in rows:
        found.setdefault(r["job_id"], []).append(
            Notification(
                channel=r["channel"],
                kind=r["kind"],
                state=r["state"],
                attempts=r["attempts"],
                provider_id=r["provider_id"],
                error=r["error"],
                occurred_at=r["occurred_at"],
                reason=r["reason"],
            )
        )
    return found


async def history_page(
    conn: Connection, limit: int, job_name: str | None, before: HistoryCursor | None = None
) -> HistoryPage:
    """Return up to ``limit`` jobs (of ``job_name`` if given) whose ``(started_at, id)`` sorts
    before ``before`` (from the newest when None), newest first, and the next page's cursor.

    Keyset pagination on ``(started_at, id)``, the history's total order: a job inserted while
    someone pages neither repeats nor hides a row of the pages that follow. One row more than
    asked says whether there is a next page.
    """
    conditions: list[str] = []
    args: list[object] = [limit + 1]
    if job_name is not None:
        args.append(job_name)
        conditions.append(f"job_name = ${len(args)}")
    if before is not None:
        args.extend((before.started_at, before.job_id))
        conditions.append(f"(started_at, id) < (${len(args) - 1}, ${len(args)})")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    rows = await conn.fetch(
        f"SELECT {_JOB_COLUMNS} FROM job_logs{where} ORDER BY started_at DESC, id DESC LIMIT $1",  # noqa: S608 constant columns and clauses, bound values
        *args,
    )
    kept = rows[:limit]
    notes = await _notifications(conn, [r["id"] for r in kept])
    jobs = [_job_log(r, tuple(notes.get(r["id"], ()))) for r in kept]
    last = jobs[-1] if len(rows) > limit else None
    return HistoryPage(jobs, None if last is None else HistoryCursor(last.started_at, last.id))


async def job_log(conn: Connection, job_id: UUID) -> JobLog | None:
    """Return the job ``job_id``, or None when the ledger has no row for it."""
    sql = f"SELECT {_JOB_COLUMNS} FROM job_logs WHERE id = $1"  # noqa: S608 constant columns
    row = await conn.fetchrow(sql, job_id)
    if row is None:
        return None
    notes = await _notifications(conn, [job_id])
    return _job_log(row, tuple(notes.get(job_id, ())))


async def job_exists(conn: Connection, job_id: UUID) -> bool:
    """True when the ledger holds a row or any event for ``job_id``."""
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM job_logs WHERE id = $1)"
            " OR EXISTS (SELECT 1 FROM job_events WHERE job_id = $1)",
            job_id,
        )
    )


async def job_events(
    conn: Connection, job_id: UUID, limit: int, offset: int
) -> tuple[list[StoredEvent], int]:
    """Return a page of the job's events in sequence order (unsequenced ones last, by time)
    and how many events the job has in all."""
    total = await conn.fetchval("SELECT count(*) FROM job_events WHERE job_id = $1", job_id)
    rows = await conn.fetch(
        "SELECT event_id, event_type, schema_version, job_id, job_name, sequence, occurred_at,"
        " received_at, payload::text AS payload FROM job_events WHERE job_id = $1"
        " ORDER BY sequence NULLS LAST, occurred_at, event_id LIMIT $2 OFFSET $3",
        job_id,
        limit,
        offset,
    )
    events = [
        StoredEvent(
            event_id=r["event_id"],
            event_type=r["event_type"],
            schema_version=r["schema_version"],
            job_id=r["job_id"],
            job_name=r["job_name"],
            sequence=r["sequence"],
            occurred_at=r["occurred_at"],
            received_at=r["received_at"],
            payload=orjson.loads(r["payload"]),
        )
        for r in rows
    ]
    return events, int(total)


async def recent_runs(conn: Connection, job_name: str | None) -> list[RunSample]:
    """Return the newest :data:`STATS_WINDOW` runs (of ``job_name`` if given), newest first."""
    rows = await conn.fetch(
        "SELECT status::text AS status, duration_ms, started_at, outcome FROM job_logs"
        " WHERE ($1::text IS NULL OR job_name = $1) ORDER BY started_at DESC, id DESC LIMIT $2",
        job_name,
        STATS_WINDOW,
    )
    return [
        RunSample(
            status=r["status"],
            duration_ms=r["duration_ms"],
            started_at=r["started_at"],
            outcome=r["outcome"],
        )
        for r in rows
    ]


async def last_schedule_check(conn: Connection, job_name: str) -> ScheduleCheck | None:
    """Return the newest slot of ``job_name`` the watchdog checked, None before its first."""
    row = await conn.fetchrow(
        "SELECT scheduled_for, outcome FROM schedule_checks WHERE job_name = $1"
        " ORDER BY scheduled_for DESC LIMIT 1",
        job_name,
    )
    if row is None:
        return None
    return ScheduleCheck(scheduled_for=row["scheduled_for"], outcome=row["outcome"])


async def last_success_at(conn: Connection, job_name: str | None) -> datetime | None:
    """Return when the newest completed run (of ``job_name`` if given) finished, ever."""
    value = await conn.fetchval(
        "SELECT max(coalesce(completed_at, started_at)) FROM job_logs"
        " WHERE status = 'completed' AND ($1::text IS NULL OR job_name = $1)",
        job_name,
    )
    return value if isinstance(value, datetime) else None
