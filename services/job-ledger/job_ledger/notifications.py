"""``job_notifications``: whether each alert went out, from the notifier's outcome events.

NotificationSent makes a record ``sent``, NotificationFailed ``failed`` (with the error),
NotificationSkipped ``skipped`` (the channel is not configured; with the reason, no error).
One record per ``(job_id, channel, kind)``, holding the outcome with the latest
``occurred_at`` (ties broken by event_id, so any delivery order ends in the same record).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from chassis.database import Connection
from contracts.events import Envelope, NotificationFailed, NotificationSent, NotificationSkipped

Outcome = NotificationSent | NotificationFailed | NotificationSkipped

_UPSERT = """
INSERT INTO job_notifications AS n
    (job_id, channel, kind, state, attempts, provider_id, error, reason, event_id, occurred_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (job_id, channel, kind) DO UPDATE SET
    state = EXCLUDED.state, attempts = EXCLUDED.attempts, provider_id = EXCLUDED.provider_id,
    error = EXCLUDED.error, reason = EXCLUDED.reason, event_id = EXCLUDED.event_id,
    occurred_at = EXCLUDED.occurred_at
WHERE (EXCLUDED.occurred_at, EXCLUDED.event_id) > (n.occurred_at, n.event_id)
"""


def latest_outcomes(events: Iterable[Envelope]) -> list[Outcome]:
    """The latest outcome per ``(job_id, channel, kind)`` among ``events``, in key order."""
    latest: dict[tuple[UUID, str, str], Outcome] = {}
    for event in events:
        if not isinstance(event, NotificationSent | NotificationFailed | NotificationSkipped):
            continue
        key = (event.job_id, event.payload.channel, event.payload.kind)
        current = latest.get(key)
        if current is None or (event.occurred_at, event.event_id) > (
            current.occurred_at,
            current.event_id,
        ):
            latest[key] = event
    return [latest[k] for k in sorted(latest, key=lambda k: (str(k[0]), k[1], k[2]))]


def _record(o: Outcome) -> tuple[Any, ...]:
    """The upsert's arguments; state, attempts, provider id, error and reason by outcome."""
    outcome: tuple[str, int, str | None, str | None, str | None]
    if isinstance(o, NotificationSent):
        outcome = ("sent", o.payload.attempts, o.payload.provider_id, None, None)
    elif isinstance(o, NotificationFailed):
        outcome = ("failed", o.payload.attempts, None, o.payload.error, None)
    else:  # skipped: nothing was tried, so no attempt is counted and nothing failed
        outcome = ("skipped", 0, None, None, o.payload.reason)
    return (o.job_id, o.payload.channel, o.payload.kind, *outcome, o.event_id, o.occurred_at)


async def record_notifications(conn: Connection, events: Iterable[Envelope]) -> int:
    """Upsert the notification outcomes among ``events``; return how many keys were touched.

    Idempotent and order-independent: an older outcome never replaces a newer one.
    """
    outcomes = latest_outcomes(events)
    if outcomes:
        await conn.executemany(_UPSERT, [_record(o) for o in outcomes])
    return len(outcomes)
