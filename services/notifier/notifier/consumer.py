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

The consumer sits on a :class:`chassis.attachment.Attachment`: its readiness asks both our
channel and the broker whether the queue has our consumer, and the service's watch re-attaches
a lost one on a fresh channel. Closing the old channel requeues what it had not acked; an ack
that fails on it is logged, and the redelivery changes nothing (the event id is recorded).
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection

from chassis.attachment import CHANNEL_GONE_ERRORS, Attachment
from chassis.deadletter import dead_letter
from chassis.topology import QueueSpec
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
        connection: AbstractRobustConnection,
        queue: QueueSpec,
        dead_letter_channel: AbstractChannel,
        planning: Planning,
        dispatcher: Dispatcher,
    ) -> None:
        """``dead_letter_channel`` must have publisher confirms: a dead letter is confirmed
        before its original is acked."""
        self._pool = pool
        self._dead_letter_channel = dead_letter_channel
        self._dead_letter_queue = queue.dead_letter_queue
        self._planning = planning
        self._dispatcher = dispatcher
        self._attachment = Attachment(connection, queue, PREFETCH, self._on_message)
        self._handling: set[asyncio.Task[None]] = set()

    @property
    def attachment(self) -> Attachment:
        """The consumer on the queue: its readiness check, and what the watch re-attaches."""
        return self._attachment

    async def start(self) -> None:
        """Consume the queue on a channel of its own; raises the broker's error if it cannot."""
        await self._attachment.attach()
        log.info("consuming %s", self._attachment.queue_name)

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Stop taking messages and let the ones in hand finish (acked once committed)."""
        await self._attachment.detach()
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
            await dead_letter(self._dead_letter_channel, message, self._dead_letter_queue, str(exc))
            return
        if not isinstance(event, JobFinished | JobAbandoned | JobMissed):
            EVENTS_CONSUMED.labels("dead-lettered").inc()
            reason = f"the notifier does not handle {event.event_type} (bound by mistake?)"
            await dead_letter(self._dead_letter_channel, message, self._dead_letter_queue, reason)
            return
        extra = {"job_id": event.job_id, "event_id": event.event_id}
        claim = Claim(self._dispatcher)
        recorded: Recorded | None = None
        try:
            async with self._pool.acquire() as conn:
                recorded = await record_outcome(conn, event, self._planning, claim)
                # Committed: the claimed records go out now (a redelivery, should the ack be
                # lost, creates nothing). One yield lets their requests be written before the
                # ack and the pool's reset (a round trip) take the loop: the alert's latency
                # then holds no broker or database step after the commit (bench: p50 about
                # 0.4 ms lower).
                claim.hand_over(recorded.claimed)
                await asyncio.sleep(0)
                await message.ack()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            if recorded is None:
                EVENTS_CONSUMED.labels("requeued").inc()
                log.warning("cannot record %s, requeueing: %s", event.event_type, exc, extra=extra)
                await asyncio.sleep(REQUEUE_PAUSE_S)
                await self._requeue(message)
                return
            # Only giving the connection back failed; the event is recorded and acked.
            log.warning("after recording %s: %s", event.event_type, exc, extra=extra)
        except CHANNEL_GONE_ERRORS as exc:
            if recorded is None:
                raise
            log.warning(
                "%s is recorded but its ack failed (the redelivery changes nothing): %s",
                event.event_type,
                exc or type(exc).__name__,
                extra=extra,
            )
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

    async def _requeue(self, message: AbstractIncomingMessage) -> None:
        try:
            await message.nack(requeue=True)
        except CHANNEL_GONE_ERRORS as exc:
            # Its channel is gone: the broker requeues what that channel had not acked.
            log.warning("could not requeue %s (redelivered anyway): %s", message.message_id, exc)
