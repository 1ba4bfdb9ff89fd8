"""The status rule of a finished run, and JobFinished's payload built under it (pure)."""

from __future__ import annotations

from collections.abc import Sequence

from contracts import Failure, JobFinishedPayload
from contracts.events import MAX_FAILURES_IN_FINISHED, JobStatus, Scope, truncate_error


def finished_payload(
    *,
    daos_total: int,
    daos_processed: int,
    daos_failed: int,
    failures: Sequence[Failure],
    duration_ms: int,
    cache_invalidated: bool,
    fatal_error: str | None,
    scope: Scope,
) -> JobFinishedPayload:
    """Returns JobFinished's payload under the status rule (README, "The event contract"):
    ``failed`` when a fatal error stopped the run or more than half of the DAOs failed, else
    ``completed`` (an empty DAO list completes with 0/0). Keeps the first 100 of ``failures``.
    Pure."""
    failed = daos_failed
    status: JobStatus = (
        "failed" if fatal_error is not None or 2 * failed > daos_total else "completed"
    )
    return JobFinishedPayload(
        status=status,
        daos_total=daos_total,
        daos_processed=daos_processed,
        daos_failed=failed,
        duration_ms=max(0, duration_ms),
        cache_invalidated=cache_invalidated,
        fatal_error=truncate_error(fatal_error) if fatal_error is not None else None,
        failures=list(failures[:MAX_FAILURES_IN_FINISHED]),
        scope=scope,
    )
