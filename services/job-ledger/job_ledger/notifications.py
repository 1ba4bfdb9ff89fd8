"""``job_notifications``: whether each alert went out, from NotificationSent / NotificationFailed.

One record per ``(job_id, channel, kind)``, holding the notifier's outcome with the latest
``occurred_at`` (ties broken by event_id, so any delivery order ends in the same record).
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from chassis.database import Connection
from contracts.events import Envelope, NotificationFailed, NotificationSent

Outcome = NotificationSent | NotificationFailed

_UPSERT = """
INSERT INTO job_notifications AS n
    (job_id, channel, kind, state, attempts, provider_id, error, event_id, occurred_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (job_id, channel, kind) DO UPDATE SET
    state = EXCLUDED.state, attempts = EXCLUDED.attempts, provider_id = EXCLUDED.provider_id,
    error = EXCLUDED.error, event_id = EXCLUDED.event_id, occurred_at = EXCLUDED.occurred_at
WHERE (EXCLUDED.occurred_at, EXCLUDED.event_id) > (n.occurred_at, n.event_id)
"""


def latest_outcomes(events: Iterable[Envelope]) -> list[Outcome]:
    """The latest outcome per ``(job_id, channel, kind)`` among ``events``, in key order."""
    latest: dict[tuple[UUID, str, str], Outcome] = {}
    for event in events:
        if not isinstance(event, NotificationSent | NotificationFailed):
            continue
        key = (event.job_id, event.payload.channel, event.payload.kind)
        current = latest.get(key)
        if current is None or (event.occurred_at, event.event_id) > (
            current.occurred_at,
            current.event_id,
        ):
            latest[key] = event
    return [latest[k] for k in sorted(latest, key=lambda k: (str(k[0]), k[1], k[2]))]


async def record_notifications(conn: Connection, events: Iterable[Envelope]) -> int:
    """Upsert the notification outcomes among ``events``; return how many keys were touched.

    Idempotent and order-independent: an older outcome never replaces a newer one.
    """
    outcomes = latest_outcomes(events)
    if outcomes:
        await conn.executemany(
            _UPSERT,
            [
                (
                    o.job_id,
                    o.payload.channel,
                    o.payload.kind,
                    "sent" if isinstance(o, NotificationSent) else "failed",
                    o.payload.attempts,
                    o.payload.provider_id if isinstance(o, NotificationSent) else None,
                    o.payload.error if isinstance(o, NotificationFailed) else None,
                    o.event_id,
                    o.occurred_at,
                )
                for o in outcomes
            ],
        )
    return len(outcomes)
