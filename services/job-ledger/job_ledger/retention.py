"""What the ledger prunes, and what it keeps for ever unless told otherwise.

- ``schedule_checks``: slots older than ``SCHEDULE_CHECK_RETENTION`` (90 days), but never
  a job name's latest slot, after which the watchdog resumes.
- Only when ``JOB_HISTORY_RETENTION`` is set (unset: kept for ever): jobs that started longer
  ago, with their ``job_events``, ``job_notifications`` and ``run_requests``; never a running
  job, nor a job name's newest run or newest completed run. Also the events of no job (a
  refused request's answer, an alert's outcome arriving for a pruned job) and refused
  requests, as old.

A pruned job goes from the event store and from ``job_logs`` in ONE statement, so
``job-ledger rebuild`` finds the two consistent at every moment. The newest runs stay so that
the figures alerts read (:mod:`job_ledger.operator_metrics`: last success, last run) never
vanish because the history was pruned.
"""

from __future__ import annotations

import asyncpg

from chassis.retention import PruneRule, Retention
from job_ledger.config import Settings
from job_ledger.projection import JOB_LOG_EVENT_TYPES

PRUNE_SCHEDULE_CHECKS = """
DELETE FROM schedule_checks WHERE ctid IN (
    SELECT c.ctid FROM schedule_checks c
    WHERE c.scheduled_for < now() - $1::interval
      AND c.scheduled_for < (SELECT max(l.scheduled_for) FROM schedule_checks l
                             WHERE l.job_name = c.job_name)
    LIMIT $2
)
"""

# Data-modifying CTEs always run to completion: the job's events, alerts and requests go with
# its row, in this one statement. Rows a consumer is merging into are skipped (SKIP LOCKED).
PRUNE_JOB_HISTORY = """
WITH doomed AS (
    SELECT l.id FROM job_logs l
    WHERE l.started_at < now() - $1::interval AND l.status <> 'running'
      AND EXISTS (SELECT 1 FROM job_logs n WHERE n.job_name = l.job_name
                  AND (n.started_at, n.id) > (l.started_at, l.id))
      AND (l.outcome <> 'completed'
           OR EXISTS (SELECT 1 FROM job_logs n WHERE n.job_name = l.job_name
                      AND n.outcome = 'completed' AND (n.started_at, n.id) > (l.started_at, l.id)))
    ORDER BY l.started_at, l.id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), events AS (
    DELETE FROM job_events WHERE job_id IN (SELECT id FROM doomed)
), notifications AS (
    DELETE FROM job_notifications WHERE job_id IN (SELECT id FROM doomed)
), requests AS (
    DELETE FROM run_requests WHERE job_id IN (SELECT id FROM doomed)
)
DELETE FROM job_logs WHERE id IN (SELECT id FROM doomed)
"""

# Events that belong to no row (a refused request's answer, an alert's outcome for a job
# pruned before it arrived): never one that makes a row, or rebuild would miss it.
_ROW_MAKING = ", ".join(f"'{t}'" for t in sorted(JOB_LOG_EVENT_TYPES))
PRUNE_LOOSE_EVENTS = f"""
DELETE FROM job_events WHERE ctid IN (
    SELECT e.ctid FROM job_events e
    WHERE e.received_at < now() - $1::interval
      AND e.event_type NOT IN ({_ROW_MAKING})
      AND NOT EXISTS (SELECT 1 FROM job_logs l WHERE l.id = e.job_id)
    LIMIT $2
)
"""  # noqa: S608 constant text

PRUNE_REFUSED_REQUESTS = """
DELETE FROM run_requests WHERE ctid IN (
    SELECT ctid FROM run_requests
    WHERE state = 'refused' AND answered_at < now() - $1::interval
    LIMIT $2
)
"""


def prune_rules(settings: Settings) -> list[PruneRule]:
    """The ledger's rules under ``settings`` (the job history's only when its retention is set)."""
    rules = [PruneRule("schedule_checks", settings.schedule_check_retention, PRUNE_SCHEDULE_CHECKS)]
    keep = settings.job_history_retention
    if keep is not None:
        rules += [
            PruneRule("job_logs", keep, PRUNE_JOB_HISTORY),
            PruneRule("job_events", keep, PRUNE_LOOSE_EVENTS),
            PruneRule("run_requests", keep, PRUNE_REFUSED_REQUESTS),
        ]
    return rules


def ledger_retention(settings: Settings, pool: asyncpg.Pool) -> Retention:
    """The ledger's :class:`Retention`, every ``RETENTION_INTERVAL``."""
    return Retention(pool, prune_rules(settings), interval=settings.retention_interval)
