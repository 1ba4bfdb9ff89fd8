"""One ``job_logs`` row as Python holds it: :class:`JobRow` and the projected :data:`COLUMNS`.

The row is what the fold of a job's events makes (:mod:`job_ledger.projection`) and what
:mod:`job_ledger.job_logs` stores, merges into and loads; the web reads its own narrower view.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

# Every projected column, in table order; created_at/updated_at are bookkeeping, not folded.
COLUMNS = (
    "id",
    "job_name",
    "started_at",
    "completed_at",
    "status",
    "daos_processed",
    "daos_total",
    "errors",
    "duration_ms",
    "cache_invalidated",
    "trigger",
    "daos_failed",
    "fatal_error",
    "last_event_at",
    "last_sequence",
    "events_received",
    "expected_events",
    "has_started",
    "abandoned_at",
    "scheduled_for",
)


@dataclass(frozen=True)
class JobRow:
    """One ``job_logs`` row as the fold makes it (``errors`` decoded from jsonb)."""

    id: UUID
    job_name: str
    started_at: datetime
    completed_at: datetime | None
    status: str
    daos_processed: int
    daos_total: int
    errors: list[dict[str, str]] | None
    duration_ms: int | None
    cache_invalidated: bool
    trigger: str | None
    daos_failed: int
    fatal_error: str | None
    last_event_at: datetime | None
    last_sequence: int | None
    events_received: int
    expected_events: int | None
    has_started: bool
    abandoned_at: datetime | None
    scheduled_for: datetime | None

    def values(self) -> tuple[Any, ...]:
        """The row's values in :data:`COLUMNS` order."""
        return tuple(getattr(self, c) for c in COLUMNS)

    def differences(self, other: JobRow) -> dict[str, tuple[Any, Any]]:
        """``{column: (self's value, other's value)}`` for every column that differs."""
        return {
            c: (getattr(self, c), getattr(other, c))
            for c in COLUMNS
            if getattr(self, c) != getattr(other, c)
        }
