"""Replay the event store into ``job_logs`` and report where the live projection differs.

The live rows are merged batch by batch in SQL (:mod:`job_ledger.job_logs`); the rebuild folds
each job's whole history in Python (:mod:`job_ledger.projection`). Two implementations of one
rule: a difference means a bug in one of them, or a row changed behind the ledger's back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from job_ledger.event_store import job_events, job_ids
from job_ledger.job_logs import load_rows, replace_rows
from job_ledger.job_row import JobRow
from job_ledger.projection import JOB_LOG_EVENT_TYPES, JobDelta

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RowDifference:
    """A job whose live row differs from the rebuilt one: which columns, live vs rebuilt.

    ``live`` is None for a job with events but no row; ``rebuilt`` None for a row with no events.
    """

    job_id: UUID
    columns: dict[str, tuple[Any, Any]]
    live: JobRow | None
    rebuilt: JobRow | None

    def describe(self) -> list[str]:
        """One line per differing column, for an operator."""
        if self.live is None:
            return [f"job {self.job_id}: missing from job_logs (rebuilt from its events)"]
        if self.rebuilt is None:
            return [f"job {self.job_id}: in job_logs but has no events (row deleted)"]
        return [
            f"job {self.job_id}: {column}: live={live!r} rebuilt={rebuilt!r}"
            for column, (live, rebuilt) in self.columns.items()
        ]


async def rebuild_row(conn: asyncpg.pool.PoolConnectionProxy[Any], job_id: UUID) -> JobRow | None:
    """The row ``job_id``'s stored events fold into, or None if none of them makes a row."""
    fold = JobDelta(job_id)
    found = False
    for event in await job_events(conn, job_id):
        if event.event_type in JOB_LOG_EVENT_TYPES:
            fold.apply(event)
            found = True
    return fold.row() if found else None


async def rebuild(pool: asyncpg.Pool, job_id: UUID | None = None) -> list[RowDifference]:
    """Recompute ``job_id``'s row (every row when None) from job_events; fix and return diffs.

    Each job is compared and repaired in its own transaction with the row locked, so a
    running consumer's merge waits instead of interleaving. Idempotent: a second run returns
    no differences. Raises ``asyncpg.PostgresError`` if the database fails.
    """
    async with pool.acquire() as conn:
        ids = (
            [job_id]
            if job_id is not None
            else await job_ids(conn, sorted(JOB_LOG_EVENT_TYPES))
            + [
                r["id"]
                for r in await conn.fetch(
                    "SELECT id FROM job_logs l WHERE NOT EXISTS"
                    " (SELECT 1 FROM job_events e WHERE e.job_id = l.id) ORDER BY id"
                )
            ]
        )
        differences: list[RowDifference] = []
        for one in ids:
            async with conn.transaction():
                await conn.execute("SELECT 1 FROM job_logs WHERE id = $1 FOR UPDATE", one)
                live = (await load_rows(conn, [one])).get(one)
                rebuilt = await rebuild_row(conn, one)
                difference = _compare(one, live, rebuilt)
                if difference is None:
                    continue
                differences.append(difference)
                if rebuilt is None:
                    await conn.execute("DELETE FROM job_logs WHERE id = $1", one)
                else:
                    await replace_rows(conn, [rebuilt])
            for line in difference.describe():
                log.warning("rebuild fixed %s", line, extra={"job_id": one})
    return differences


def _compare(job_id: UUID, live: JobRow | None, rebuilt: JobRow | None) -> RowDifference | None:
    if live is None and rebuilt is None:
        return None
    if live is None or rebuilt is None:
        return RowDifference(job_id, {}, live, rebuilt)
    columns = live.differences(rebuilt)
    return RowDifference(job_id, columns, live, rebuilt) if columns else None
