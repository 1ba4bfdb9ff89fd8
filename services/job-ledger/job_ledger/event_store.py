"""The event store, ``job_events``: every event once, every recalculator step once per job."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast
from uuid import UUID

import asyncpg
import orjson

from chassis.database import Connection
from contracts.events import EVENT_TYPES, Event

_INSERT = """
INSERT INTO job_events (event_id, job_id, job_name, event_type, schema_version, sequence,
                        occurred_at, payload)
SELECT e.event_id, e.job_id, e.job_name, e.event_type, e.schema_version, e.sequence,
       e.occurred_at, e.payload::jsonb
FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::int[], $6::int[],
            $7::timestamptz[], $8::text[])
     AS e(event_id, job_id, job_name, event_type, schema_version, sequence, occurred_at, payload)
ON CONFLICT DO NOTHING
RETURNING event_id
"""


@dataclass
class StoreResult:
    """What :func:`insert_events` made of a batch, each event in exactly one list."""

    inserted: list[Event] = field(default_factory=list)
    duplicates: list[Event] = field(default_factory=list)
    conflicts: list[Event] = field(default_factory=list)
    """Events whose ``(job_id, sequence)`` is already taken by another event_id."""


async def insert_events(conn: Connection, events: Sequence[Event]) -> StoreResult:
    """Store the events not stored yet; return which were new, duplicates, or conflicts.

    Idempotent (a stored event_id is a duplicate). Run it in the caller's transaction: under
    concurrency, a second transaction inserting the same event waits for the first to commit.
    Events are inserted in event_id order so two ledger processes lock index entries in the
    same order. Raises ``asyncpg.PostgresError`` if the database rejects a value.
    """
    unique: dict[UUID, Event] = {}
    for event in events:
        unique.setdefault(event.event_id, event)
    ordered = [unique[k] for k in sorted(unique)]
    if not ordered:
        return StoreResult()
    rows = await conn.fetch(
        _INSERT,
        [e.event_id for e in ordered],
        [e.job_id for e in ordered],
        [e.job_name for e in ordered],
        [e.event_type for e in ordered],
        [e.schema_version for e in ordered],
        [e.sequence for e in ordered],
        [e.occurred_at for e in ordered],
        [orjson.dumps(e.payload.model_dump(mode="json")).decode() for e in ordered],
    )
    new_ids = {r["event_id"] for r in rows}
    result = StoreResult()
    not_new = [e for e in ordered if e.event_id not in new_ids]
    stored_ids: set[UUID] = set()
    if not_new:
        stored_ids = {
            r["event_id"]
            for r in await conn.fetch(
                "SELECT event_id FROM job_events WHERE event_id = ANY($1::uuid[])",
                [e.event_id for e in not_new],
            )
        }
    for event in events:
        if event.event_id in new_ids:
            target = result.inserted
        elif event.event_id in stored_ids:
            target = result.duplicates
        else:
            target = result.conflicts
        target.append(event)
    # A batch may carry the same event twice; only the first copy counts as inserted.
    seen: set[UUID] = set()
    inserted = []
    for event in result.inserted:
        if event.event_id in seen:
            result.duplicates.append(event)
        else:
            seen.add(event.event_id)
            inserted.append(event)
    result.inserted = inserted
    return result


def event_from_record(record: asyncpg.Record) -> Event:
    """The contract model of a stored event; raises ``pydantic.ValidationError`` if corrupt."""
    data: dict[str, Any] = {
        "event_id": record["event_id"],
        "event_type": record["event_type"],
        "schema_version": record["schema_version"],
        "job_id": record["job_id"],
        "job_name": record["job_name"],
        "sequence": record["sequence"],
        "occurred_at": record["occurred_at"],
        "payload": orjson.loads(record["payload"]),
    }
    model = EVENT_TYPES[record["event_type"]]
    return cast(Event, model.model_validate(data))


_SELECT = (
    "SELECT event_id, event_type, schema_version, job_id, job_name, sequence, occurred_at,"
    " payload FROM job_events"
)


async def job_events(conn: Connection, job_id: UUID) -> list[Event]:
    """Every stored event of ``job_id``, in sequence order (unsequenced ones last)."""
    records = await conn.fetch(
        _SELECT + " WHERE job_id = $1 ORDER BY sequence NULLS LAST, occurred_at, event_id",
        job_id,
    )
    return [event_from_record(r) for r in records]


async def job_ids(conn: Connection, event_types: Sequence[str]) -> list[UUID]:
    """Every job id that has an event of one of ``event_types``, in id order."""
    records = await conn.fetch(
        "SELECT DISTINCT job_id FROM job_events WHERE event_type = ANY($1::text[]) ORDER BY job_id",
        list(event_types),
    )
    return [r["job_id"] for r in records]
