"""Outcome events as the recalculator publishes them, built from counts, for the notifier tests."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from contracts import Failure, JobFinished, JobFinishedPayload
from contracts.events import JobStatus, utc_now

JOB_NAME = "weekly-gvs-recalculation"


def job_finished(
    status: JobStatus,
    total: int,
    processed: int,
    *,
    duration_ms: int,
    cache_invalidated: bool,
    failures: Sequence[tuple[str, str]] = (),
    fatal_error: str | None = None,
    occurred_at: datetime | None = None,
) -> JobFinished:
    """The JobFinished of a new job of :data:`JOB_NAME` in which ``total - processed`` DAOs
    failed; ``failures`` are (DAO name, error) pairs. Its sequence follows the JobStarted and
    one event per DAO, as a real run's does."""
    return JobFinished(
        job_id=uuid.uuid4(),
        job_name=JOB_NAME,
        sequence=total + 1,
        occurred_at=occurred_at or utc_now(),
        payload=JobFinishedPayload(
            status=status,
            daos_total=total,
            daos_processed=processed,
            daos_failed=total - processed,
            duration_ms=duration_ms,
            cache_invalidated=cache_invalidated,
            fatal_error=fatal_error,
            failures=[
                Failure(dao_id=f"dao-{i}", dao_name=name, error=error)
                for i, (name, error) in enumerate(failures)
            ],
        ),
    )
