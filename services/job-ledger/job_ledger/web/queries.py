"""The SQL reads behind the API and the pages, returning plain typed rows.

Every function takes a connection whose ``search_path`` is the ledger schema, reads only,
and is therefore idempotent. JSON columns are read as text and decoded here, so the result
does not depend on whichever jsonb codec the pool was given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson

from chassis.database import Connection

STATS_WINDOW = 30
"""How many of the newest runs the statistics look at."""


@dataclass(frozen=True, slots=True)
class Failure:
    dao_id: str
    dao_name: str
    error: str


@dataclass(slots=True)
class Notification:
    """One delivery of the job's alerts (read-only; not ``frozen`` for the reason of JobLog)."""

    channel: str
    kind: str
    state: str
    attempts: int
    provider_id: str | None
    error: str | None
    occurred_at: datetime
    reason: str | None
    """Why a ``skipped`` delivery was not tried (its channel is not configured)."""


@dataclass(slots=True)
class JobLog:
    """One ``job_logs`` row with the job's notification deliveries (treat it as read-only).

    The fields are ``_JOB_COLUMNS`` in their order (a row is unpacked into them), then the
    notifications. Not ``frozen``: a frozen dataclass sets each field through
    ``object.__setattr__``, and the history API builds 30 of these per request.
    ``errors_json`` is the row's ``errors`` as stored, already in the API's shape
    (``[{"daoId", "daoName", "error"}]``); :attr:`errors` decodes it when needed.
    """

    id: UUID
    job_name: str
    started_at: datetime
    completed_at: datetime | None
    status: str
    daos_processed: int
    daos_total: int
    errors_json: str | None
    duration_ms: int | None
    cache_invalidated: bool
    created_at: datetime
    updated_at: datetime
    trigger: str | None
    daos_failed: int
    fatal_error: str | None
    last_event_at: datetime | None
    events_received: int
    expected_events: int | None
    abandoned_at: datetime | None
    outcome: str
    """What became of it: running, completed, failed, abandoned, or missed (a schedule slot no
    run started for; its story ``status`` is failed)."""
    scheduled_for: datetime | None
    """The slot a missed row stands for (None for a run)."""
    notifications: tuple[Notification, ...] = field(default=(), kw_only=True)

    @property
    def complete(self) -> bool:
        """True once every event ``0..JobFinished.sequence`` has arrived."""
        return self.expected_events is not None and self.events_received >= self.expected_events

    @property
    def errors(self) -> list[Failure] | None:
        """The failed DAOs with their errors, in the order they failed (None: none failed)."""
        return _failures(self.errors_json)

    @property
    def failed_dao_ids(self) -> list[str]:
        """The failed DAOs' ids in the order they failed, each once."""
        return list(dict.fromkeys(f.dao_id for f in self.errors or ()))


@dataclass(frozen=True, slots=True)
class StoredEvent:
    event_id: UUID
    event_type: str
    schema_version: int
    job_id: UUID
    job_name: str
    sequence: int | None
    occurred_at: datetime
    received_at: datetime
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class FailureGroup:
    """The DAOs that failed with one error message, in the order they failed."""

    error: str
    daos: tuple[tuple[str, str], ...]

    @property
    def count(self) -> int:
        return len(self.daos)


@dataclass(frozen=True, slots=True)
class RunSample:
    """What the statistics need of one run (or missed slot: outcome ``missed``)."""

    status: str
    duration_ms: int | None
    started_at: datetime
    outcome: str


@dataclass(frozen=True, slots=True)
class ScheduleCheck:
    """The newest schedule slot the watchdog has checked, and whether a run started for it."""

    scheduled_for: datetime
    outcome: str


_JOB_COLUMNS = """
    id, job_name, started_at, completed_at, status::text AS status, daos_processed,
    daos_total, errors::text AS errors_json, duration_ms, cache_invalidated, created_at, updated_at,
    trigger, daos_failed, fatal_error, last_event_at, events_received, expected_events,
    abandoned_at, outcome, scheduled_for
"""


def _failures(text: str | None) -> list[Failure] | None:
    if text is None:
        return None
    items = orjson.loads(text)
    if not isinstance(items, list):
        return None
    return [
        Failure(
            dao_id=str(item.get("daoId", "")),
            dao_name=str(item.get("daoName", "")),
            error=str(item.get("error", "")),
        )
        for item in items
        if isinstance(item, dict)
    ]


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


async def recent_job_logs(conn: Connection, limit: int, job_name: str | None) -> list[JobLog]:
    """Return up to ``limit`` jobs, newest ``started_at`` first, of ``job_name`` if given."""
    rows = await conn.fetch(
        f"SELECT {_JOB_COLUMNS} FROM job_logs WHERE ($2::text IS NULL OR job_name = $2)"
        " ORDER BY started_at DESC, id DESC LIMIT $1",
        limit,
        job_name,
    )
    notes = await _notifications(conn, [r["id"] for r in rows])
    return [_job_log(r, tuple(notes.get(r["id"], ()))) for r in rows]


async def job_log(conn: Connection, job_id: UUID) -> JobLog | None:
    """Return the job ``job_id``, or None when the ledger has no row for it."""
    row = await conn.fetchrow(f"SELECT {_JOB_COLUMNS} FROM job_logs WHERE id = $1", job_id)
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


def group_failures(failures: list[Failure] | None) -> list[FailureGroup]:
    """Group failures by exact error message: the biggest group first, ties by first failure."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for failure in failures or ():
        groups.setdefault(failure.error, []).append((failure.dao_id, failure.dao_name))
    ordered = sorted(groups.items(), key=lambda item: -len(item[1]))  # stable: ties keep order
    return [FailureGroup(error=error, daos=tuple(daos)) for error, daos in ordered]


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
