"""What one batch does inside its single transaction: store, then fold only what is new."""

from __future__ import annotations

from collections.abc import Sequence

from chassis.database import Connection
from contracts.events import Event
from job_ledger.event_store import StoreResult, insert_events
from job_ledger.job_logs import merge_deltas
from job_ledger.notifications import record_notifications
from job_ledger.projection import job_deltas
from job_ledger.run_requests import record_run_answers


async def record_events(conn: Connection, events: Sequence[Event]) -> StoreResult:
    """Store ``events`` and fold the newly stored ones into ``job_logs``, ``job_notifications``
    and ``run_requests``.

    Call it inside a transaction and ack the messages only after it committed. Idempotent: an
    event already stored is reported as a duplicate and folded no second time. Raises
    ``asyncpg.PostgresError`` (or a connection error) and then changes nothing once rolled back.
    """
    result = await insert_events(conn, events)
    if result.inserted:
        await merge_deltas(conn, job_deltas(result.inserted).values())
        await record_notifications(conn, result.inserted)
        await record_run_answers(conn, result.inserted)
    return result
