"""What the notifier prunes: processed-event marks and finished delivery records.

- ``processed_events``: marks older than ``PROCESSED_MARK_RETENTION`` (90 days).
- ``deliveries``: records finished (sent, failed, skipped) and unchanged for
  ``DELIVERY_RETENTION`` (90 days); never a pending one.
- ``outcomes`` stay: one row a run, what later decisions look back on.

Why a mark may go: a message is delivered again only while it waits in the queue (an ack lost
with its connection: at the next connection) or when its producer's outbox sends it again
(a publish whose confirm was lost: at once); both are seconds to an outage after the mark was
written, never months. Even a copy replayed from the dead-letter queue months later creates
nothing: the ``outcomes`` row of its job and event type, which is kept, admits each outcome
once (see :mod:`notifier.intake`).
"""

from __future__ import annotations

import asyncpg

from chassis.retention import PruneRule, Retention
from notifier.config import Settings

PRUNE_PROCESSED_MARKS = """
DELETE FROM processed_events WHERE ctid IN (
    SELECT ctid FROM processed_events WHERE processed_at < now() - $1::interval LIMIT $2
)
"""

PRUNE_FINISHED_DELIVERIES = """
DELETE FROM deliveries WHERE ctid IN (
    SELECT ctid FROM deliveries
    WHERE state <> 'pending' AND updated_at < now() - $1::interval
    LIMIT $2
)
"""


def prune_rules(settings: Settings) -> list[PruneRule]:
    """The notifier's rules under ``settings``."""
    return [
        PruneRule("processed_events", settings.processed_mark_retention, PRUNE_PROCESSED_MARKS),
        PruneRule("deliveries", settings.delivery_retention, PRUNE_FINISHED_DELIVERIES),
    ]


def notifier_retention(settings: Settings, pool: asyncpg.Pool) -> Retention:
    """The notifier's :class:`Retention`, every ``RETENTION_INTERVAL``."""
    return Retention(pool, prune_rules(settings), interval=settings.retention_interval)
