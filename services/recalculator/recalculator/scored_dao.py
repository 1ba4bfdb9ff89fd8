"""The one statement that records a scored DAO: its score row, the job's next sequence and the
outbox row of its DaoProcessed, with that number spliced into the event encoded beforehand.

One statement is one implicit transaction and one round trip, so the job row's lock (which
keeps sequences contiguous) is held for one commit instead of three round trips.
"""

from __future__ import annotations

from chassis.outbox import OUTBOX_COLUMNS

# Stands for the sequence in an event encoded before its number is taken: no job has this many
# events (the contract has no upper bound, so a real sequence is never mistaken for it).
PLACEHOLDER_SEQUENCE = 987_654_321_987_654_321
_SEQUENCE_FIELD = b'"sequence":'
_PLACEHOLDER = _SEQUENCE_FIELD + str(PLACEHOLDER_SEQUENCE).encode()


def split_at_sequence(body: bytes) -> tuple[bytes, bytes]:
    """Split an encoded event with the placeholder sequence into the bytes before its number
    and after; ``before + str(n).encode() + after`` is the event with sequence ``n``."""
    before, found, after = body.partition(_PLACEHOLDER)
    if not found or _PLACEHOLDER in after:
        raise ValueError("the body does not hold the placeholder sequence exactly once")
    return before + _SEQUENCE_FIELD, after


# The score row, then (only if it is new) the next sequence of the job and the outbox row of
# DaoProcessed with that number spliced into its body, into chassis.outbox's columns. One
# statement: it commits on its own, and a retry after a lost answer finds the score row and
# writes nothing.
RECORD_DAO_PROCESSED = f"""
WITH scored AS (
    INSERT INTO gvs_scores (job_id, dao_id, score, components, computed_at)
    VALUES ($1, $2, $3, $4::jsonb, $5)
    ON CONFLICT (job_id, dao_id) DO NOTHING RETURNING true
), numbered AS (
    UPDATE jobs SET next_sequence = next_sequence + 1, daos_processed = daos_processed + 1
    WHERE id = $1 AND EXISTS (SELECT 1 FROM scored)
    RETURNING next_sequence - 1 AS sequence
), queued AS (
    INSERT INTO {OUTBOX_COLUMNS}
    SELECT $6, $7, $8, $9::bytea || convert_to(sequence::text, 'UTF8') || $10::bytea, $11::jsonb
    FROM numbered
)
SELECT sequence FROM numbered
"""
