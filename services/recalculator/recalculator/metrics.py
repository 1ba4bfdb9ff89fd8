"""The recalculator's Prometheus metrics, served by the worker's ``/metrics``.

Outbox depth and relay publish rate come from the chassis (``outbox_pending``,
``outbox_published_total``); these add what only the recalculator knows.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

DAOS_PROCESSED = Counter("recalc_daos_processed_total", "DAOs scored and recorded")
DAOS_FAILED = Counter("recalc_daos_failed_total", "DAOs that failed after their retries")
RUNS_FINISHED = Counter("recalc_runs_finished_total", "Runs finished, by status", ["status"])
RUNS_REFUSED = Counter(
    "recalc_runs_refused_total", "Runs refused because another run of the job was going"
)
LAST_RUN_STATUS = Gauge(
    "recalc_last_run_status",
    "Status of the last run this process finished: 1 completed, 0 failed, -1 none yet",
)
LAST_RUN_STATUS.set(-1)
LAST_RUN_FINISHED = Gauge(
    "recalc_last_run_finished_timestamp_seconds", "When the last run this process ran finished"
)
RUN_IN_PROGRESS = Gauge("recalc_run_in_progress", "1 while this process runs a job")
DATABASE_RETRIES = Counter(
    "recalc_database_retries_total",
    "Database steps of a run tried again after a transient error (an outage, a restart)",
)
