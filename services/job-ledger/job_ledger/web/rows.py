"""The typed rows the API's and pages' reads return, and what is computed from one alone.

Plain dataclasses with ``slots``: the history API builds 30 :class:`JobLog` per request, so
they are cheap to make; treat them as read-only. :mod:`job_ledger.web.queries` fills them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import orjson


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

    The fields are the columns a query selects, in their order (a row is unpacked into
    them), then the notifications. Not ``frozen``: a frozen dataclass sets each field through
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


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class HistoryCursor:
    """A place in the history, newest first: the rows after it are those whose
    ``(started_at, id)`` sorts before this one's. Any place is valid, a row's or not."""

    started_at: datetime
    job_id: UUID

    def precedes(self, job: JobLog) -> bool:
        """True when ``job`` is on a page from this cursor: its ``(started_at, id)`` sorts
        before the cursor's (Python orders UUIDs as Postgres does, byte by byte)."""
        return (job.started_at, job.id) < (self.started_at, self.job_id)

    @property
    def token(self) -> str:
        """The cursor as ``before=`` takes it: ``<startedAt in µs since 1970 UTC>,<uuid>``.

        Microseconds, as Postgres keeps them (the API's ``startedAt`` shows milliseconds only),
        so a page never skips a row started within the same millisecond.
        """
        micros = (self.started_at - EPOCH) // timedelta(microseconds=1)
        return f"{micros},{self.job_id}"


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """Up to ``limit`` jobs, newest first, and where the next (older) page starts; ``older`` is
    None on the last page."""

    jobs: list[JobLog]
    older: HistoryCursor | None


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


def group_failures(failures: list[Failure] | None) -> list[FailureGroup]:
    """Group failures by exact error message: the biggest group first, ties by first failure."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for failure in failures or ():
        groups.setdefault(failure.error, []).append((failure.dao_id, failure.dao_name))
    ordered = sorted(groups.items(), key=lambda item: -len(item[1]))  # stable: ties keep order
    return [FailureGroup(error=error, daos=tuple(daos)) for error, daos in ordered]
