"""The ledger's Prometheus metrics, on the default registry the web app's ``/metrics`` serves."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_FOLDED = Counter(
    "ledger_events_folded_total", "Events newly stored and folded, by type", ["event_type"]
)
DUPLICATES = Counter("ledger_duplicate_events_total", "Events delivered again and ignored")
BATCH_SIZE = Histogram(
    "ledger_batch_size",
    "Messages per consumed batch (one transaction each)",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
)
BATCH_SECONDS = Histogram("ledger_batch_seconds", "Time to store and fold one batch")
DEAD_LETTERED = Counter(
    "ledger_dead_lettered_total", "Messages the ledger dead-lettered, by cause", ["cause"]
)
PROJECTION_LAG = Gauge(
    "ledger_projection_lag_seconds",
    "Now minus occurred_at of the latest event folded in the last batch",
)
DATABASE_RETRIES = Counter(
    "ledger_database_retries_total", "Batches retried because Postgres was unreachable"
)
JOBS_BY_STATUS = Gauge("ledger_jobs", "job_logs rows by status", ["status"])
JOBS_ABANDONED = Counter("ledger_jobs_abandoned_total", "Stale jobs the watchdog marked failed")
RUNS_MISSED = Counter("ledger_runs_missed_total", "Schedule slots with no run (JobMissed)")
WATCHDOG_CAUGHT_UP = Gauge(
    "ledger_watchdog_caught_up",
    "1 when the last watchdog check judged, 0 when it waited for the ledger to catch up",
)
