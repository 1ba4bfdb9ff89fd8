"""Reading and writing ``job_logs``: merge a batch's deltas, refresh errors, replace rows.

The live projection folds only a batch's newly stored events into a
:class:`~job_ledger.projection.JobDelta` per job and merges it into the stored row with
:data:`_MERGE`. The specification of that statement is :meth:`JobDelta.merged`: from the
stored ``a.row()`` and the delta ``b`` it must write ``a.merged(b).row()`` (a property test
holds the two equal on the real database). Merging is commutative and associative, so any
split of a job's events into batches, in any order, ends in the row that folding all of them
at once gives: what ``rebuild`` checks.

Cost: a batch costs one upsert per touched job, independent of how many events the job already
has; only ``errors`` is recomputed from the event store, and only for jobs whose batch holds a
DaoFailed (an index range scan over that job's events).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from chassis.database import Connection
from job_ledger.job_row import COLUMNS, JobRow
from job_ledger.projection import JobDelta

_PLACEHOLDERS = ", ".join(
    f"${i}::jsonb" if c == "errors" else f"${i}" for i, c in enumerate(COLUMNS, 1)
)

# ``EXCLUDED`` is the batch's delta written as the row it makes on its own, ``j`` the stored
# row. A delta has expected_events set iff
# it holds JobFinished, has_started iff it holds JobStarted (each at most once per job). Until
# JobFinished, completed_at is the earliest end seen (JobAbandoned's or JobMissed's), and a
# missed slot's trigger and fatal_error stand (no JobStarted or JobFinished carries others).
_MERGE = f"""
INSERT INTO job_logs AS j ({", ".join(COLUMNS)}) VALUES ({_PLACEHOLDERS})
ON CONFLICT (id) DO UPDATE SET
    started_at = CASE WHEN EXCLUDED.has_started THEN EXCLUDED.started_at
                      WHEN j.has_started THEN j.started_at
                      ELSE LEAST(j.started_at, EXCLUDED.started_at) END,
    has_started = j.has_started OR EXCLUDED.has_started,
    trigger = CASE WHEN EXCLUDED.has_started THEN EXCLUDED.trigger
                   WHEN j.has_started THEN j.trigger
                   ELSE COALESCE(j.trigger, EXCLUDED.trigger) END,
    daos_processed = j.daos_processed + EXCLUDED.daos_processed,
    daos_failed = j.daos_failed + EXCLUDED.daos_failed,
    events_received = j.events_received + EXCLUDED.events_received,
    last_event_at = GREATEST(j.last_event_at, EXCLUDED.last_event_at),
    last_sequence = GREATEST(j.last_sequence, EXCLUDED.last_sequence),
    abandoned_at = LEAST(j.abandoned_at, EXCLUDED.abandoned_at),
    scheduled_for = LEAST(j.scheduled_for, EXCLUDED.scheduled_for),
    daos_total = CASE WHEN EXCLUDED.expected_events IS NOT NULL THEN EXCLUDED.daos_total
                      WHEN j.expected_events IS NOT NULL THEN j.daos_total
                      WHEN EXCLUDED.has_started THEN EXCLUDED.daos_total
                      ELSE j.daos_total END,
    status = CASE WHEN EXCLUDED.expected_events IS NOT NULL THEN EXCLUDED.status
                  WHEN j.expected_events IS NOT NULL THEN j.status
                  WHEN COALESCE(EXCLUDED.abandoned_at, j.abandoned_at,
                                EXCLUDED.scheduled_for, j.scheduled_for) IS NOT NULL
                      THEN 'failed'::job_status
                  ELSE 'running'::job_status END,
    completed_at = CASE WHEN EXCLUDED.expected_events IS NOT NULL THEN EXCLUDED.completed_at
                        WHEN j.expected_events IS NOT NULL THEN j.completed_at
                        ELSE LEAST(j.completed_at, EXCLUDED.completed_at) END,
    duration_ms = CASE WHEN EXCLUDED.expected_events IS NOT NULL
                       THEN EXCLUDED.duration_ms ELSE j.duration_ms END,
    cache_invalidated = CASE WHEN EXCLUDED.expected_events IS NOT NULL
                             THEN EXCLUDED.cache_invalidated ELSE j.cache_invalidated END,
    fatal_error = CASE WHEN EXCLUDED.expected_events IS NOT NULL THEN EXCLUDED.fatal_error
                       WHEN j.expected_events IS NOT NULL THEN j.fatal_error
                       ELSE COALESCE(j.fatal_error, EXCLUDED.fatal_error) END,
    expected_events = COALESCE(EXCLUDED.expected_events, j.expected_events),
    updated_at = now()
"""  # noqa: S608 constant columns

# A fresh statement (so, under READ COMMITTED, a fresh snapshot) taken after the row lock:
# it sees the DaoFailed events of every ledger transaction that committed before ours.
_REFRESH_ERRORS = """
UPDATE job_logs SET errors = (
    SELECT jsonb_agg(jsonb_build_object('daoId', e.payload->>'dao_id',
                                        'daoName', e.payload->>'dao_name',
                                        'error', e.payload->>'error') ORDER BY e.sequence)
    FROM job_events e WHERE e.job_id = job_logs.id AND e.event_type = 'DaoFailed')
WHERE id = ANY($1::uuid[])
"""

_REPLACE = f"""
INSERT INTO job_logs AS j ({", ".join(COLUMNS)}) VALUES ({_PLACEHOLDERS})
ON CONFLICT (id) DO UPDATE SET
    {", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS if c != "id")}, updated_at = now()
"""  # noqa: S608 constant columns


def _args(row: JobRow) -> tuple[Any, ...]:
    values = list(row.values())
    errors_at = COLUMNS.index("errors")
    values[errors_at] = None if row.errors is None else orjson.dumps(row.errors).decode()
    return tuple(values)


async def merge_deltas(conn: Connection, deltas: Iterable[JobDelta]) -> None:
    """Merge each job's delta into its ``job_logs`` row, creating rows as needed.

    Rows are locked in job id order, so two ledger processes folding the same jobs wait for
    each other instead of deadlocking. Not idempotent: each delta must be merged once (the
    caller folds only events the event store has just inserted, in the same transaction).
    """
    ordered = sorted((delta.row() for delta in deltas), key=lambda r: r.id)
    if not ordered:
        return
    await conn.executemany(_MERGE, [_args(r) for r in ordered])
    with_failures = [r.id for r in ordered if r.errors]
    if with_failures:
        await conn.execute(_REFRESH_ERRORS, with_failures)


async def replace_rows(conn: Connection, rows: Sequence[JobRow]) -> None:
    """Write ``rows`` as they are (rebuild's repair); idempotent."""
    if rows:
        await conn.executemany(_REPLACE, [_args(r) for r in sorted(rows, key=lambda r: r.id)])


def row_from_record(record: asyncpg.Record) -> JobRow:
    values = {c: record[c] for c in COLUMNS}
    if values["errors"] is not None:
        values["errors"] = orjson.loads(values["errors"])
    values["status"] = str(values["status"])
    return JobRow(**values)


async def load_rows(conn: Connection, job_ids: Sequence[UUID] | None = None) -> dict[UUID, JobRow]:
    """The stored rows of ``job_ids`` (every row when None), by job id."""
    sql = f"SELECT {', '.join(COLUMNS)} FROM job_logs"  # noqa: S608 constant columns
    records = (
        await conn.fetch(sql + " WHERE id = ANY($1::uuid[])", list(job_ids))
        if job_ids is not None
        else await conn.fetch(sql)
    )
    return {r["id"]: row_from_record(r) for r in records}
