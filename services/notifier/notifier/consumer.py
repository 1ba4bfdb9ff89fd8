"""The notifier's consumer: each outcome event becomes delivery records, in one transaction.

For a valid JobFinished, JobAbandoned or JobMissed the consumer, in ONE transaction
(:func:`notifier.intake.record_outcome`), records the event id as processed (a redelivery then
changes nothing), remembers a JobFinished run for later decisions, and writes one pending
record per notification with the alert to render, claiming for their first attempt those the
dispatcher has room for. After the commit it hands the claimed records to the dispatcher,
which sends them at once, and acks: a crash at any point leaves either the message unacked
(redelivered) or the records committed (sent by the resume, after their lease if claimed).

A message that is not a valid event of a known schema version, or an event this consumer
has no business with, goes to the dead-letter queue with the reason. A database fault leaves
the message unacked and requeued after a pause; the queue's delivery limit bounds that.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from chassis.deadletter import dead_letter
from contracts.codec import ContractError, parse_event
from contracts.events import JobAbandoned, JobFinished, JobMissed
from notifier.dispatcher import Dispatcher
from notifier.intake import Claim, Planning, Recorded, record_outcome
from notifier.metrics import EVENTS_CONSUMED

log = logging.getLogger(__name__)

PREFETCH = 10
# Pause before requeueing a message the database could not take, so an outage is not a spin.
REQUEUE_PAUSE_S = 1.0


class Consumer:
    """Consumes the notifier queue into delivery records; see the module docstring."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        channel: AbstractChannel,
        queue: AbstractQueue,
        dead_letter_queue: str,
        planning: Planning,
        dispatcher: Dispatcher,
    ) -> None:
        self._pool = pool
        self._channel = channel
        self._queue = queue
        self._dead_letter_queue = dead_letter_queue
        self._planning = planning
        self._dispatcher = dispatcher
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
        claim = Claim(self._dispatcher)
        recorded: Recorded | None = None
        try:
            async with self._pool.acquire() as conn:
                recorded = await record_outcome(conn, event, self._planning, claim)
                # Committed: the claimed records go out now, their requests leaving while the
                # ack is written (a redelivery, should the ack be lost, creates nothing). Both
                # before the connection goes back to the pool: its reset is a round trip.
                claim.hand_over(recorded.claimed)
                await message.ack()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            if recorded is None:
                EVENTS_CONSUMED.labels("requeued").inc()
                log.warning("cannot record %s, requeueing: %s", event.event_type, exc, extra=extra)
                await asyncio.sleep(REQUEUE_PAUSE_S)
                await message.nack(requeue=True)
                return
            # Only giving the connection back failed; the event is recorded and acked.
            log.warning("after recording %s: %s", event.event_type, exc, extra=extra)
        finally:
            claim.release()
        EVENTS_CONSUMED.labels("recorded" if recorded.created else "duplicate").inc()
        if recorded.unclaimed:
            # The dispatcher had no room for them: it claims them itself once a slot frees.
            self._dispatcher.wake()
        if recorded.created:
            log.info(
                "%s: %d notification(s) to send", event.event_type, recorded.created, extra=extra
            )
        else:
            log.info("%s already handled; nothing more to send", event.event_type, extra=extra)
