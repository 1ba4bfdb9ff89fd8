"""The delivery records as the dispatcher works them: claim, count attempts, finish, release.

Every function takes the connection or pool it runs on. Records are created, and claimed for
their first attempt, by :mod:`notifier.intake` in the consumer's transaction. A
delivery record is keyed by ``(job_id, channel, kind)`` and goes pending → sent, failed or
skipped exactly once: :func:`finish` only moves a pending record, and writes the
NotificationSent, NotificationFailed or NotificationSkipped event into the outbox in the same
transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal, cast
from uuid import UUID

import asyncpg

from chassis.outbox import enqueue
from contracts.codec import encode_event
from contracts.events import (
    Channel,
    NotificationFailed,
    NotificationFailedPayload,
    NotificationKind,
    NotificationSent,
    NotificationSentPayload,
    NotificationSkipped,
    NotificationSkippedPayload,
    routing_key,
    truncate_error,
)
from notifier.alert import Alert

FinalState = Literal["sent", "failed", "skipped"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivery record as the dispatcher needs it."""

    job_id: UUID
    channel: Channel
    kind: NotificationKind
    job_name: str
    alert: Alert
    attempts: int
    last_error: str | None
    # True when ``attempts`` already counts the attempt this process is about to make: the
    # consumer claimed the record for it in the transaction that created it.
    attempt_counted: bool = False

    @property
    def key(self) -> str:
        """``{job_id}/{channel}/{kind}``: the record's primary key as one string."""
        return f"{self.job_id}/{self.channel}/{self.kind}"

    @property
    def idempotency_key(self) -> str:
        """``{job_id}/{kind}``: the same for every attempt, before and after a restart."""
        return f"{self.job_id}/{self.kind}"


def _delivery(row: asyncpg.Record) -> Delivery:
    return Delivery(
        job_id=row["job_id"],
        channel=cast(Channel, row["channel"]),
        kind=cast(NotificationKind, row["kind"]),
        job_name=row["job_name"],
        alert=Alert.model_validate_json(row["alert"]),
        attempts=row["attempts"],
        last_error=row["last_error"],
    )


async def claim_due(
    pool: asyncpg.Pool, lease: timedelta, limit: int, exclude: list[str]
) -> list[Delivery]:
    """Lease up to ``limit`` pending records that are due and that no one holds; return them.

    ``exclude`` lists the :attr:`Delivery.key` of records this process is already sending.
    """
    rows = await pool.fetch(
        "UPDATE deliveries d SET claimed_until = now() + $1::interval, updated_at = now()"
        " FROM (SELECT job_id, channel, kind FROM deliveries"
        "       WHERE state = 'pending' AND next_attempt_at <= now()"
        "         AND (claimed_until IS NULL OR claimed_until < now())"
        "         AND NOT (job_id::text || '/' || channel || '/' || kind = ANY($3::text[]))"
        "       ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED) due"
        " WHERE (d.job_id, d.channel, d.kind) = (due.job_id, due.channel, due.kind)"
        " RETURNING d.*",
        lease,
        limit,
        exclude,
    )
    return [_delivery(r) for r in rows]


async def start_attempt(pool: asyncpg.Pool, delivery: Delivery, lease: timedelta) -> int:
    """Count one more attempt and renew the lease before sending; return the attempt number.

    Counting before sending bounds the attempts even when the process dies mid-request.
    """
    return int(
        await pool.fetchval(
            "UPDATE deliveries SET attempts = attempts + 1, claimed_until = now() + $4::interval,"
            " updated_at = now() WHERE job_id = $1 AND channel = $2 AND kind = $3"
            " RETURNING attempts",
            delivery.job_id,
            delivery.channel,
            delivery.kind,
            lease,
        )
    )


async def schedule_retry(
    pool: asyncpg.Pool, delivery: Delivery, error: str, delay: timedelta, lease: timedelta
) -> None:
    """Keep the attempt's error and when the next one is due; the lease covers the wait."""
    await pool.execute(
        "UPDATE deliveries SET last_error = $4, next_attempt_at = now() + $5::interval,"
        " claimed_until = now() + $5::interval + $6::interval, updated_at = now()"
        " WHERE job_id = $1 AND channel = $2 AND kind = $3",
        delivery.job_id,
        delivery.channel,
        delivery.kind,
        error,
        delay,
        lease,
    )


async def finish(
    pool: asyncpg.Pool,
    delivery: Delivery,
    state: FinalState,
    *,
    exchange: str,
    attempts: int,
    error: str | None = None,
    provider_id: str | None = None,
) -> bool:
    """Move a pending record to its final state and enqueue the event saying so.

    Returns False (and writes nothing) if the record was no longer pending. ``sent``
    publishes NotificationSent; ``failed`` publishes NotificationFailed with ``error``;
    ``skipped`` publishes NotificationSkipped, ``error`` being the reason (kept in the
    record's ``reason``, its ``last_error`` left empty: nothing was tried, nothing failed).
    """
    reason = error if state == "skipped" else None
    last_error = None if state == "skipped" else error
    async with pool.acquire() as conn, conn.transaction():
        updated = await conn.fetchval(
            "UPDATE deliveries SET state = $4, attempts = $5, last_error = $6, provider_id = $7,"
            " reason = $8, claimed_until = NULL, finished_at = now(), updated_at = now()"
            " WHERE job_id = $1 AND channel = $2 AND kind = $3 AND state = 'pending'"
            " RETURNING true",
            delivery.job_id,
            delivery.channel,
            delivery.kind,
            state,
            attempts,
            last_error,
            provider_id,
            reason,
        )
        if not updated:
            return False
        event = _outcome_event(delivery, state, attempts, error, provider_id)
        await enqueue(conn, exchange, routing_key(event), encode_event(event))
    return True


def _outcome_event(
    delivery: Delivery,
    state: FinalState,
    attempts: int,
    error: str | None,
    provider_id: str | None,
) -> NotificationSent | NotificationFailed | NotificationSkipped:
    """The event that tells the ledger how ``delivery`` ended."""
    ids = {"job_id": delivery.job_id, "job_name": delivery.job_name}
    if state == "sent":
        return NotificationSent(
            **ids,
            payload=NotificationSentPayload(
                channel=delivery.channel,
                kind=delivery.kind,
                attempts=attempts,
                provider_id=provider_id,
            ),
        )
    if state == "skipped":
        return NotificationSkipped(
            **ids,
            payload=NotificationSkippedPayload(
                channel=delivery.channel,
                kind=delivery.kind,
                reason=truncate_error(error or "the channel is not configured"),
            ),
        )
    return NotificationFailed(
        **ids,
        payload=NotificationFailedPayload(
            channel=delivery.channel,
            kind=delivery.kind,
            attempts=attempts,
            error=truncate_error(error or state),
        ),
    )


async def release(pool: asyncpg.Pool, keys: list[str]) -> None:
    """Drop this process's leases on ``keys`` (at shutdown) so a restart resumes them at once."""
    if keys:
        await pool.execute(
            "UPDATE deliveries SET claimed_until = NULL WHERE state = 'pending'"
            " AND job_id::text || '/' || channel || '/' || kind = ANY($1::text[])",
            keys,
        )
