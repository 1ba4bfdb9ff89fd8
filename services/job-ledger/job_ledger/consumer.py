"""The ledger's consumer: every event on its queue stored and folded, a batch per transaction.

It is a batch handler on the chassis's :class:`~chassis.batch_consumer.BatchConsumer`, which
parses at the edge, hands batches in delivery order, acks a batch only after the handler
returned (its transaction committed), retries it in place while Postgres is away, and re-attaches
a consumer the broker lost.

| a message …                                        | becomes                                   |
|----------------------------------------------------|-------------------------------------------|
| that is no valid event (:func:`parse_ledger_event`) | dead-lettered: ``contract violation: …``  |
| whose (job_id, sequence) another event holds       | dead-lettered: ``contract violation: …``  |
| that the database refuses for its content          | dead-lettered alone (its batch is handed  |
|                                                    | again one message at a time)              |
| anything else                                      | stored and folded, then acked             |
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

import asyncpg
from aio_pika.abc import AbstractRobustConnection

from chassis.batch_consumer import BatchConsumer
from chassis.delivery import Rejected
from chassis.retry import is_transient_database_error
from chassis.topology import QueueSpec
from contracts.codec import ContractError, parse_event
from contracts.events import Event, utc_now
from job_ledger import metrics
from job_ledger.event_store import StoreResult
from job_ledger.recording import record_events

log = logging.getLogger(__name__)

_LOGGED_TYPES = frozenset({"JobStarted", "JobFinished", "JobAbandoned", "JobMissed"})


def parse_ledger_event(body: bytes) -> Event:
    """The event ``body`` carries; raises :class:`Rejected` saying why it is none."""
    try:
        return parse_event(body)
    except ContractError as exc:
        raise Rejected(f"contract violation: {exc}", cause="invalid") from exc


class EventFolder:
    """Stores and folds a batch of events in one transaction (a batch handler)."""

    def __init__(self, pool: asyncpg.Pool, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._pool = pool
        self._clock = clock

    async def __call__(self, events: Sequence[Event]) -> Mapping[int, Rejected]:
        """Store and fold ``events``; return the positions whose sequence another event holds.

        Raises :class:`Rejected` when the database refuses the batch for its content, and the
        database's error when it is away (nothing is then stored). Idempotent.
        """
        metrics.BATCH_SIZE.observe(len(events))
        with metrics.BATCH_SECONDS.time():
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    result = await record_events(conn, events)
            except asyncpg.PostgresError as exc:
                if is_transient_database_error(exc):
                    raise
                reason = f"database rejected the event: {type(exc).__name__}: {exc}"
                raise Rejected(reason, cause="rejected") from exc
        self._record_metrics(result)
        return sequence_conflicts(events, result)

    def _record_metrics(self, result: StoreResult) -> None:
        for event in result.inserted:
            metrics.EVENTS_FOLDED.labels(event.event_type).inc()
            if event.event_type in _LOGGED_TYPES:
                log.info(
                    "folded %s",
                    event.event_type,
                    extra={"job_id": event.job_id, "event_id": event.event_id},
                )
        if result.duplicates:
            metrics.DUPLICATES.inc(len(result.duplicates))
        if result.inserted:
            latest = max(e.occurred_at for e in result.inserted)
            metrics.PROJECTION_LAG.set((self._clock() - latest).total_seconds())


def sequence_conflicts(events: Sequence[Event], result: StoreResult) -> dict[int, Rejected]:
    """The positions of ``events`` the store refused because another event holds their
    (job_id, sequence), each with the reason it is dead-lettered for."""
    conflicts = {e.event_id for e in result.conflicts}
    return {
        index: Rejected(
            f"contract violation: sequence {event.sequence} of job {event.job_id} is"
            f" already taken by another event (this one is {event.event_id})",
            cause="sequence_conflict",
        )
        for index, event in enumerate(events)
        if event.event_id in conflicts
    }


def event_consumer(
    pool: asyncpg.Pool,
    connection: AbstractRobustConnection,
    queue: QueueSpec,
    *,
    batch_size: int = 500,
    batch_wait: timedelta = timedelta(milliseconds=50),
    max_backoff_s: float = 10.0,
    clock: Callable[[], datetime] = utc_now,
) -> BatchConsumer[Event]:
    """The consumer of the ledger's queue: batches of up to ``batch_size`` events, or what
    came within ``batch_wait`` of the first, folded by :class:`EventFolder`."""
    return BatchConsumer(
        connection,
        queue,
        parse_ledger_event,
        EventFolder(pool, clock=clock),
        batch_size=batch_size,
        batch_wait_s=batch_wait.total_seconds(),
        on_dead_letter=lambda rejected: metrics.DEAD_LETTERED.labels(rejected.cause).inc(),
        on_retry=lambda _: metrics.DATABASE_RETRIES.inc(),
        max_backoff_s=max_backoff_s,
    )
