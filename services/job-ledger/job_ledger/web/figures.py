"""The figures computed from rows: live progress of a running job and the run statistics.

Pure functions of their arguments (the clock is passed in), so they are tested without I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from croniter import croniter

from job_ledger.web.rows import JobLog, RunSample, ScheduleCheck

STATS_WINDOW = 30
"""How many of the newest runs the statistics look at."""


@dataclass(frozen=True, slots=True)
class Progress:
    processed: int
    failed: int
    total: int
    rate_per_second: float | None
    eta_seconds: int | None
    last_event_at: datetime | None

    @property
    def done(self) -> int:
        return self.processed + self.failed

    @property
    def percent(self) -> float:
        """How much of the job is done, 0 to 100 (100 for a job with no DAOs)."""
        if self.total <= 0:
            return 100.0
        return min(100.0, 100.0 * self.done / self.total)


@dataclass(frozen=True, slots=True)
class JobStats:
    runs: int
    finished: int
    completed: int
    failed: int
    missed: int
    running: int
    failure_rate: float | None
    duration_p50_ms: int | None
    duration_p95_ms: int | None
    last_success_at: datetime | None
    window_runs: int
    """The window: the newest this many runs (``runs`` says how many there were)."""
    window_start: datetime | None
    """When the oldest run in the window started; None when there is none."""
    window_end: datetime | None
    """When the newest run in the window started; None when there is none."""


@dataclass(frozen=True, slots=True)
class ScheduleGlance:
    """The schedule at a glance: the next slot, and the newest slot the watchdog checked."""

    job_name: str
    expression: str
    next_slot: datetime
    last_checked: ScheduleCheck | None

    @property
    def last_met(self) -> bool | None:
        """Whether a run started for the newest checked slot; None before the first check."""
        return None if self.last_checked is None else self.last_checked.outcome == "started"


def schedule_glance(
    job_name: str, expression: str, now: datetime, last_checked: ScheduleCheck | None
) -> ScheduleGlance:
    """Return ``job_name``'s next slot after ``now`` under ``expression`` (cron, UTC)."""
    next_slot = croniter(expression, now.astimezone(UTC)).get_next(datetime).astimezone(UTC)
    return ScheduleGlance(job_name, expression, next_slot, last_checked)


def progress_of(job: JobLog, now: datetime) -> Progress | None:
    """Return the live progress of a running job, None for a finished one.

    The rate is DAOs done (processed or failed) per second since the job started; the ETA
    is the DAOs left at that rate. Both are None until a DAO is done, and the ETA is 0 once
    all are.
    """
    if job.status != "running":
        return None
    done = job.daos_processed + job.daos_failed
    elapsed = (now - job.started_at).total_seconds()
    rate = done / elapsed if done > 0 and elapsed > 0 else None
    left = max(0, job.daos_total - done)
    if left == 0 and done > 0:
        eta: int | None = 0
    elif rate:
        eta = math.ceil(left / rate)
    else:
        eta = None
    return Progress(
        processed=job.daos_processed,
        failed=job.daos_failed,
        total=job.daos_total,
        rate_per_second=round(rate, 3) if rate is not None else None,
        eta_seconds=eta,
        last_event_at=job.last_event_at,
    )


def percentile(values: list[int], fraction: float) -> int | None:
    """Return the nearest-rank percentile (``fraction`` in 0..1) of ``values``; None if empty.

    Nearest rank always answers a value that occurred, which is what a duration chart shows.
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def job_stats(runs: list[RunSample], last_success_at: datetime | None) -> JobStats:
    """Return the statistics over ``runs`` (the newest :data:`STATS_WINDOW`): the failure rate
    counts finished runs only (a missed slot is a failed one, counted in ``missed`` too), the
    duration percentiles the runs that recorded a duration (a missed slot has none); the window
    is the span of the runs' start times."""
    starts = [r.started_at for r in runs]
    completed = sum(1 for r in runs if r.status == "completed")
    failed = sum(1 for r in runs if r.status == "failed")
    finished = completed + failed
    durations = [r.duration_ms for r in runs if r.duration_ms is not None and r.status != "running"]
    return JobStats(
        runs=len(runs),
        finished=finished,
        completed=completed,
        failed=failed,
        missed=sum(1 for r in runs if r.outcome == "missed"),
        running=len(runs) - finished,
        failure_rate=round(failed / finished, 4) if finished else None,
        duration_p50_ms=percentile(durations, 0.5),
        duration_p95_ms=percentile(durations, 0.95),
        last_success_at=last_success_at,
        window_runs=STATS_WINDOW,
        window_start=min(starts, default=None),
        window_end=max(starts, default=None),
    )
