"""The notifier's consumer: each outcome event becomes delivery records, in one transaction.

For a valid JobFinished, JobAbandoned or JobMissed the consumer, in ONE transaction, records
the event id as processed (a redelivery then changes nothing), remembers a JobFinished run
for later decisions, and writes one pending record per notification with the alert to render.
It acks after the commit and wakes the dispatcher, which sends after the ack: a crash at any
point leaves either the message unacked (redelivered) or the records committed (resumed).

A message that is not a valid event of a known schema version, or an event this consumer
has no business with, goes to the dead-letter queue with the reason. A database fault leaves
the message unacked and requeued after a pause; the queue's delivery limit bounds that.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from chassis.deadletter import dead_letter
from contracts.codec import ContractError, parse_event
from contracts.events import JobAbandoned, JobFinished, JobMissed
from notifier import deliveries
from notifier.decisions import OutcomeEvent, plan_notifications
from notifier.metrics import EVENTS_CONSUMED

log = logging.getLogger(__name__)

PREFETCH = 10
# Pause before requeueing a message the database could not take, so an outage is not a spin.
REQUEUE_PAUSE_S = 1.0


@dataclass(frozen=True, slots=True)
class Planning:
    """The settings the decisions depend on."""

    revalidation_configured: bool
    admin_base_url: str


async def record_outcome(pool: asyncpg.Pool, event: OutcomeEvent, planning: Planning) -> int:
    """Record ``event`` and its pending deliveries in one transaction; return how many records.

    Idempotent: a redelivered event (same ``event_id``), or a second event of the same type
    for a job that already has records, creates nothing and returns 0.
    """
    async with pool.acquire() as conn, conn.transaction():
        if not await deliveries.mark_processed(conn, event):
            return 0
        previous = None
        if isinstance(event, JobFinished):
            previous = await deliveries.previous_run(conn, event)
            await deliveries.remember_run(conn, event)
        if await deliveries.has_deliveries(conn, event.job_id, event.event_type):
            return 0
        plan = plan_notifications(
            event,
            previous,
            revalidation_configured=planning.revalidation_configured,
            admin_base_url=planning.admin_base_url,
        )
        return await deliveries.create_deliveries(conn, event, plan)


class Consumer:
    """Consumes the notifier queue into delivery records; see the module docstring."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        channel: AbstractChannel,
        queue: AbstractQueue,
        dead_letter_queue: str,
        planning: Planning,
        on_recorded: Callable[[], None],
    ) -> None:
        self._pool = pool
        self._channel = channel
        self._queue = queue
        self._dead_letter_queue = dead_letter_queue
        self._planning = planning
        self._on_recorded = on_recorded
        self._consumer_tag: str | None = None
        self._handling: set[asyncio.Task[None]] = set()

    @property
    def attached(self) -> bool:
        """True while the queue has our consumer on an open channel."""
        return self._consumer_tag is not None and not self._channel.is_closed

    async def start(self) -> None:
        await self._channel.set_qos(prefetch_count=PREFETCH)
        self._consumer_tag = await self._queue.consume(self._on_message)
        log.info("consuming %s", self._queue.name)

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Stop taking messages and let the ones in hand finish (acked once committed)."""
        if self._consumer_tag is not None:
            tag, self._consumer_tag = self._consumer_tag, None
            if not self._channel.is_closed:
                await self._queue.cancel(tag)
        if self._handling:
            await asyncio.wait(list(self._handling), timeout=timeout_s)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handling.add(task)
        try:
            await self.handle(message)
        finally:
            if task is not None:
                self._handling.discard(task)

    async def handle(self, message: AbstractIncomingMessage) -> None:
        """Record, dead-letter or requeue one message; never raises for a bad message."""
        try:
            event = parse_event(message.body)
        except ContractError as exc:
            EVENTS_CONSUMED.labels("dead-lettered").inc()
            await dead_letter(self._channel, message, self._dead_letter_queue, str(exc))
            return
        if not isinstance(event, JobFinished | JobAbandoned | JobMissed):
            EVENTS_CONSUMED.labels("dead-lettered").inc()
            reason = f"the notifier does not handle {event.event_type} (bound by mistake?)"
            await dead_letter(self._channel, message, self._dead_letter_queue, reason)
            return
        extra = {"job_id": event.job_id, "event_id": event.event_id}
        try:
            created = await record_outcome(self._pool, event, self._planning)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            EVENTS_CONSUMED.labels("requeued").inc()
            log.warning("cannot record %s, requeueing: %s", event.event_type, exc, extra=extra)
            await asyncio.sleep(REQUEUE_PAUSE_S)
            await message.nack(requeue=True)
            return
        await message.ack()
        EVENTS_CONSUMED.labels("recorded" if created else "duplicate").inc()
        if created:
            log.info("%s: %d notification(s) to send", event.event_type, created, extra=extra)
            self._on_recorded()
        else:
            log.info("%s already handled; nothing more to send", event.event_type, extra=extra)
