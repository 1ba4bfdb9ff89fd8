"""The JSON the API answers, camelCase exactly as the story's contract, built from rows.

Each builder writes one model of :mod:`job_ledger.web.schemas`, key for key and in its order
(a unit test holds them together); dicts are built directly, for the history API's speed.

Timestamps are written as JavaScript's ``toISOString`` writes them (``2025-12-22T00:05:32.000Z``),
which is what the story's examples show and what a browser parses everywhere.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

import orjson

from contracts import RunRequested
from job_ledger.run_requests import RunRequest
from job_ledger.web.figures import JobStats, Progress
from job_ledger.web.rows import FailureGroup, JobLog, Notification, StoredEvent

Json = dict[str, Any]


def timestamp(moment: datetime | None) -> str | None:
    """Return ``moment`` in UTC with milliseconds and a ``Z``; None stays None."""
    if moment is None:
        return None
    return _utc_text(moment)


# Called for every timestamp of every row, and a dashboard polls the same page again and
# again: the same moments come back, so their text is kept. asyncpg already gives UTC, so the
# conversion is skipped then, and the "+00:00" is cut rather than searched for.
@functools.lru_cache(maxsize=8192)
def _utc_text(moment: datetime) -> str:
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"


def notification_json(n: Notification) -> Json:
    return {
        "channel": n.channel,
        "kind": n.kind,
        "state": n.state,
        "attempts": n.attempts,
        "providerId": n.provider_id,
        "error": n.error,
        "reason": n.reason,
        "occurredAt": _utc_text(n.occurred_at),
    }


def progress_json(p: Progress | None) -> Json | None:
    if p is None:
        return None
    return {
        "processed": p.processed,
        "failed": p.failed,
        "total": p.total,
        "ratePerSecond": p.rate_per_second,
        "etaSeconds": p.eta_seconds,
        "lastEventAt": timestamp(p.last_event_at),
    }


def job_log_json(job: JobLog, progress: Progress | None) -> Json:
    """The story's JobLog fields, then what the ledger adds (see the OpenAPI document)."""
    return {
        "id": str(job.id),
        "jobName": job.job_name,
        "startedAt": _utc_text(job.started_at),  # never null: one call less per row
        "completedAt": timestamp(job.completed_at),
        "status": job.status,
        "daosProcessed": job.daos_processed,
        "daosTotal": job.daos_total,
        # Stored in this very shape by the fold: passed through, not decoded and built again.
        "errors": None if job.errors_json is None else orjson.Fragment(job.errors_json),
        "durationMs": job.duration_ms,
        "cacheInvalidated": job.cache_invalidated,
        "createdAt": _utc_text(job.created_at),
        "updatedAt": _utc_text(job.updated_at),
        "trigger": job.trigger,
        "daosFailed": job.daos_failed,
        "fatalError": job.fatal_error,
        "lastEventAt": timestamp(job.last_event_at),
        "abandonedAt": timestamp(job.abandoned_at),
        "outcome": job.outcome,
        "scheduledFor": timestamp(job.scheduled_for),
        "eventsReceived": job.events_received,
        "expectedEvents": job.expected_events,
        "complete": job.complete,
        "notifications": [notification_json(n) for n in job.notifications],
        "progress": progress_json(progress),
    }


def event_json(e: StoredEvent) -> Json:
    """A stored event: the envelope in camelCase, the payload as the contract sent it."""
    return {
        "eventId": str(e.event_id),
        "eventType": e.event_type,
        "schemaVersion": e.schema_version,
        "jobId": str(e.job_id),
        "jobName": e.job_name,
        "sequence": e.sequence,
        "occurredAt": timestamp(e.occurred_at),
        "receivedAt": timestamp(e.received_at),
        "payload": e.payload,
    }


def failure_group_json(g: FailureGroup) -> Json:
    return {
        "error": g.error,
        "count": g.count,
        "daos": [{"daoId": dao_id, "daoName": name} for dao_id, name in g.daos],
    }


def stats_json(s: JobStats, job_name: str | None) -> Json:
    return {
        "jobName": job_name,
        "runs": s.runs,
        "finished": s.finished,
        "completed": s.completed,
        "failed": s.failed,
        "runsMissed": s.missed,
        "running": s.running,
        "failureRate": s.failure_rate,
        "durationP50Ms": s.duration_p50_ms,
        "durationP95Ms": s.duration_p95_ms,
        "lastSuccessAt": timestamp(s.last_success_at),
        "windowRuns": s.window_runs,
        "windowStart": timestamp(s.window_start),
        "windowEnd": timestamp(s.window_end),
    }


def run_request_json(command: RunRequested) -> Json:
    return {
        "requestId": str(command.request_id),
        "jobName": command.job_name,
        "trigger": command.trigger,
        "daoIds": command.dao_ids,
        "requestedAt": timestamp(command.requested_at),
    }


def run_request_outcome_json(r: RunRequest) -> Json:
    """What became of a run request: pending, accepted (with the job it started) or refused."""
    return {
        "requestId": str(r.request_id),
        "jobName": r.job_name,
        "trigger": r.trigger,
        "state": r.state,
        "jobId": None if r.job_id is None else str(r.job_id),
        "reason": r.reason,
        "requestedAt": timestamp(r.requested_at),
        "answeredAt": timestamp(r.answered_at),
    }
