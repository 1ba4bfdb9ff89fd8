"""The job store: each step of a run and its event, written in one transaction.

Every function here writes the state change and the event that reports it into the outbox in
the same transaction, so the event exists if and only if the change committed. Sequence numbers
are taken from ``jobs.next_sequence`` with ``UPDATE ... RETURNING`` inside that transaction: the
row lock serialises the per-DAO transactions of a job, and a rolled back transaction gives its
number back, so a job's sequences stay contiguous (0 for JobStarted, +1 for each later event).

A DAO's result, the hot step, is ONE statement (so one implicit transaction, one round trip):
its row, the sequence and the outbox row (:mod:`recalculator.dao_results`).

A transaction whose connection dies during COMMIT may have committed without saying so; the
DAO and JobFinished steps are idempotent, so the run can retry them after such an error without
writing a second event. Every connection is acquired with ``ACQUIRE_TIMEOUT_S``: waiting on the
pool can end in ``TimeoutError`` (a transient error), never hang a run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from uuid import UUID, uuid4

import asyncpg

from chassis.database import ACQUIRE_TIMEOUT_S, Connection
from chassis.outbox import enqueue
from contracts import (
    Envelope,
    Failure,
    JobFinished,
    JobFinishedPayload,
    JobStarted,
    JobStartedPayload,
    encode_event,
    routing_key,
)
from contracts.events import MAX_FAILURES_IN_FINISHED, Trigger
from recalculator import dao_results
from recalculator.answers import accepted_event
from recalculator.daos import DaoRef
from recalculator.requests import scope_of
from recalculator.scoring import GvsScore
from recalculator.status_rule import finished_payload

OnCommit = Callable[[], None]


def _noop() -> None:
    return None


class JobStore:
    """Writes a job's rows and events into ``pool``'s schema; ``exchange`` is where the outbox
    relay publishes them; ``on_commit`` is called after each commit (to wake the relay)."""

    def __init__(self, pool: asyncpg.Pool, exchange: str, on_commit: OnCommit = _noop) -> None:
        self._pool = pool
        self._exchange = exchange
        self._on_commit = on_commit

    async def _emit(self, conn: Connection, event: Envelope) -> None:
        await enqueue(conn, self._exchange, routing_key(event), encode_event(event))

    async def start_job(
        self,
        *,
        job_name: str,
        trigger: Trigger,
        daos_total: int,
        started_at: datetime,
        request_id: UUID | None = None,
        dao_ids: Sequence[str] | None = None,
    ) -> UUID | None:
        """Creates the job row and its JobStarted (sequence 0) in one transaction, with the
        RunAccepted of ``request_id`` when there is one (a run asked for by a RunRequested).

        Returns the new job id, or None when a job for ``request_id`` already exists (a
        redelivered command), in which case nothing is written: idempotent per request.
        """
        job_id = uuid4()
        async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            inserted = await conn.fetchval(
                "INSERT INTO jobs (id, job_name, trigger, request_id, dao_ids, started_at,"
                " daos_total) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                " ON CONFLICT (request_id) DO NOTHING RETURNING id",
                job_id,
                job_name,
                trigger,
                request_id,
                list(dao_ids) if dao_ids is not None else None,
                started_at,
                daos_total,
            )
            if inserted is None:
                return None
            if request_id is not None:
                await self._emit(
                    conn,
                    accepted_event(
                        job_id=job_id,
                        job_name=job_name,
                        request_id=request_id,
                        trigger=trigger,
                        dao_ids=dao_ids,
                    ),
                )
            event = JobStarted(
                job_id=job_id,
                job_name=job_name,
                occurred_at=started_at,
                payload=JobStartedPayload(
                    daos_total=daos_total, trigger=trigger, scope=scope_of(dao_ids)
                ),
            )
            await self._emit(conn, event)
        self._on_commit()
        return job_id

    async def record_dao_processed(
        self,
        *,
        job_id: UUID,
        job_name: str,
        dao: DaoRef,
        score: GvsScore,
        duration_ms: int,
        computed_at: datetime,
    ) -> int | None:
        """Writes ``dao``'s score row and its DaoProcessed in one statement; returns the event's
        sequence. Idempotent per (job, DAO): returns None and writes nothing when the score row
        is already there (an earlier attempt committed)."""
        async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            sequence = await dao_results.record_dao_processed(
                conn,
                self._exchange,
                job_id=job_id,
                job_name=job_name,
                dao=dao,
                score=score,
                duration_ms=duration_ms,
                computed_at=computed_at,
            )
        if sequence is not None:
            self._on_commit()
        return sequence

    async def record_dao_failed(
        self, *, job_id: UUID, job_name: str, dao: DaoRef, error: str, attempts: int
    ) -> int | None:
        """Writes ``dao``'s failure row and its DaoFailed in one statement; returns the event's
        sequence. Idempotent per (job, DAO): returns None and writes nothing when the DAO
        already failed (an earlier attempt committed)."""
        async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            sequence = await dao_results.record_dao_failed(
                conn,
                self._exchange,
                job_id=job_id,
                job_name=job_name,
                dao=dao,
                error=error,
                attempts=attempts,
            )
        if sequence is not None:
            self._on_commit()
        return sequence

    async def processed_dao_ids(self, job_id: UUID) -> list[str]:
        """Returns the DAOs whose score row (and DaoProcessed) committed for ``job_id``."""
        async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            rows = await conn.fetch(
                "SELECT dao_id FROM gvs_scores WHERE job_id = $1 ORDER BY dao_id", job_id
            )
        return [row["dao_id"] for row in rows]

    async def finish_job(
        self,
        *,
        job_id: UUID,
        job_name: str,
        duration_ms: int,
        cache_invalidated: bool,
        fatal_error: str | None,
        finished_at: datetime,
    ) -> JobFinishedPayload:
        """Closes the job row and writes its JobFinished, the job's last event, in one
        transaction; returns its payload. The counts and failures are read from the committed
        rows under the job row's lock, so they match the events exactly, even for a DAO whose
        task was cancelled right after its commit. Idempotent: when the job is already closed
        (an earlier attempt committed), writes nothing and returns the payload it committed
        (with this call's ``duration_ms``). Raises ``LookupError`` for an unknown job."""
        async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            running, payload = await _finished_payload(
                conn, job_id, duration_ms, cache_invalidated, fatal_error
            )
            if not running:
                return payload
            sequence = await conn.fetchval(
                "UPDATE jobs SET next_sequence = next_sequence + 1, status = $2,"
                " finished_at = $3, cache_invalidated = $4, fatal_error = $5"
                " WHERE id = $1 RETURNING next_sequence - 1",
                job_id,
                payload.status,
                finished_at,
                payload.cache_invalidated,
                payload.fatal_error,
            )
            event = JobFinished(
                job_id=job_id,
                job_name=job_name,
                sequence=sequence,
                occurred_at=finished_at,
                payload=payload,
            )
            await self._emit(conn, event)
        self._on_commit()
        return payload


async def _finished_payload(
    conn: Connection,
    job_id: UUID,
    duration_ms: int,
    cache_invalidated: bool,
    fatal_error: str | None,
) -> tuple[bool, JobFinishedPayload]:
    """Whether ``job_id`` is still running (its row now locked), and its JobFinished payload
    from the committed rows (for a closed job: with what it was closed with). Raises
    ``LookupError`` for an unknown job."""
    job = await conn.fetchrow(
        "SELECT status, daos_total, daos_processed, daos_failed, cache_invalidated,"
        " fatal_error, dao_ids FROM jobs WHERE id = $1 FOR UPDATE",
        job_id,
    )
    if job is None:
        raise LookupError(f"no job {job_id}")
    running = job["status"] == "running"
    if not running:
        cache_invalidated, fatal_error = job["cache_invalidated"], job["fatal_error"]
    failures = await conn.fetch(
        "SELECT dao_id, dao_name, error FROM dao_failures WHERE job_id = $1"
        " ORDER BY sequence LIMIT $2",
        job_id,
        MAX_FAILURES_IN_FINISHED,
    )
    payload = finished_payload(
        daos_total=job["daos_total"],
        daos_processed=job["daos_processed"],
        daos_failed=job["daos_failed"],
        failures=[Failure(**dict(row)) for row in failures],
        duration_ms=duration_ms,
        cache_invalidated=cache_invalidated,
        fatal_error=fatal_error,
        scope=scope_of(job["dao_ids"]),
    )
    return running, payload
