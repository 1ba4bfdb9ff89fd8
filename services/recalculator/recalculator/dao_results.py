"""A scored or failed DAO, recorded in ONE statement: its row, the job's next sequence, and its
event in the outbox (:class:`chassis.outbox_numbered.NumberedEnqueue`).

The job row's lock (which keeps a job's sequences contiguous) is then held for one commit, not
for several round trips, so the job's DAOs are written concurrently everywhere but there. Each
statement is idempotent per (job, DAO): when the DAO's row is already there (an earlier attempt
committed, its answer lost), it writes nothing and returns None.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import orjson

from chassis.database import Connection
from chassis.outbox_numbered import NUMBER_PLACEHOLDER, NumberedEnqueue
from contracts import (
    DaoFailed,
    DaoFailedPayload,
    DaoProcessed,
    DaoProcessedPayload,
    encode_event,
    routing_key,
)
from contracts.events import truncate_error
from recalculator.daos import DaoRef
from recalculator.scoring import GvsScore

# The score row, then (only if it is new) the job's next sequence.
_DAO_PROCESSED = NumberedEnqueue(
    """
    scored AS (
        INSERT INTO gvs_scores (job_id, dao_id, score, components, computed_at)
        VALUES ($1, $2, $3, $4::jsonb, $5)
        ON CONFLICT (job_id, dao_id) DO NOTHING RETURNING true
    ), numbered AS (
        UPDATE jobs SET next_sequence = next_sequence + 1, daos_processed = daos_processed + 1
        WHERE id = $1 AND EXISTS (SELECT 1 FROM scored)
        RETURNING next_sequence - 1 AS number
    )
    """,
    parameters=5,
    number_field="sequence",
)

# The job's next sequence (only if the DAO has no failure row yet), then the failure row.
_DAO_FAILED = NumberedEnqueue(
    """
    numbered AS (
        UPDATE jobs SET next_sequence = next_sequence + 1, daos_failed = daos_failed + 1
        WHERE id = $1
          AND NOT EXISTS (SELECT 1 FROM dao_failures WHERE job_id = $1 AND dao_id = $2)
        RETURNING next_sequence - 1 AS number
    ), failed AS (
        INSERT INTO dao_failures (job_id, sequence, dao_id, dao_name, error, attempts)
        SELECT $1, number, $2, $3, $4, $5 FROM numbered
    )
    """,
    parameters=5,
    number_field="sequence",
)


async def record_dao_processed(
    conn: Connection,
    exchange: str,
    *,
    job_id: UUID,
    job_name: str,
    dao: DaoRef,
    score: GvsScore,
    duration_ms: int,
    computed_at: datetime,
) -> int | None:
    """Write ``dao``'s score row and its DaoProcessed for ``exchange``; return the event's
    sequence, or None when the score row was there already (nothing written)."""
    components = {name: c.model_dump(mode="json") for name, c in score.components.items()}
    event = DaoProcessed(
        job_id=job_id,
        job_name=job_name,
        sequence=NUMBER_PLACEHOLDER,
        payload=DaoProcessedPayload(
            dao_id=dao.id, dao_name=dao.name, score=score.score, duration_ms=duration_ms
        ),
    )
    arguments = (job_id, dao.id, score.score, orjson.dumps(components).decode(), computed_at)
    return await _DAO_PROCESSED.execute(
        conn, arguments, exchange, routing_key(event), encode_event(event)
    )


async def record_dao_failed(
    conn: Connection,
    exchange: str,
    *,
    job_id: UUID,
    job_name: str,
    dao: DaoRef,
    error: str,
    attempts: int,
) -> int | None:
    """Write ``dao``'s failure row and its DaoFailed (the error truncated to the contract's
    limit) for ``exchange``; return the event's sequence, or None when the DAO had failed
    already (nothing written)."""
    error = truncate_error(error)
    event = DaoFailed(
        job_id=job_id,
        job_name=job_name,
        sequence=NUMBER_PLACEHOLDER,
        payload=DaoFailedPayload(dao_id=dao.id, dao_name=dao.name, error=error, attempts=attempts),
    )
    arguments = (job_id, dao.id, dao.name, error, attempts)
    return await _DAO_FAILED.execute(
        conn, arguments, exchange, routing_key(event), encode_event(event)
    )
