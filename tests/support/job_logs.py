"""``job_logs`` rows as the ledger's web queries return them, for tests of what pages compute."""

from __future__ import annotations

import uuid
from datetime import datetime

from job_ledger.web.rows import JobLog


def job_log(
    started_at: datetime,
    *,
    status: str = "running",
    processed: int = 0,
    failed: int = 0,
    total: int = 10,
    duration_ms: int | None = None,
    last_event_at: datetime | None = None,
    events_received: int = 0,
) -> JobLog:
    """A cron run of the weekly recalculation, created and last updated at ``started_at``,
    with no error list, fatal error or notification, and not known to be complete."""
    return JobLog(
        id=uuid.uuid4(),
        job_name="weekly-gvs-recalculation",
        started_at=started_at,
        completed_at=None,
        status=status,
        daos_processed=processed,
        daos_total=total,
        errors_json=None,
        duration_ms=duration_ms,
        cache_invalidated=False,
        created_at=started_at,
        updated_at=started_at,
        trigger="cron",
        daos_failed=failed,
        fatal_error=None,
        last_event_at=last_event_at,
        events_received=events_received,
        expected_events=None,
        abandoned_at=None,
        outcome=status,
        scheduled_for=None,
    )
