"""The notifier's consumer: each outcome event becomes delivery records, in one transaction.

It is a handler on the chassis consumer (:class:`chassis.consumer.MessageConsumer`), which
parses at the edge, acks once the handler returned, requeues after a pause what failed (a
database fault), dead-letters what was rejected, and re-attaches a consumer the broker lost.

:func:`parse_outcome` takes a JobFinished, JobAbandoned or JobMissed; a message that is not a
valid event of a known schema version, or an event this consumer has no business with, is
rejected with the reason (dead-lettered). :class:`OutcomeHandler` records the event in ONE
transaction (:func:`notifier.intake.record_outcome`): the event id as processed (a redelivery
then changes nothing), a JobFinished run remembered for later decisions, and one pending record
per notification with the alert to render, claiming for their first attempt those the
dispatcher has room for. After the commit it hands the claimed records to the dispatcher, which
sends them at once; the ack follows. A crash at any point leaves either the message unacked
(redelivered) or the records committed (sent by the resume, after their lease if claimed).
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from aio_pika.abc import AbstractRobustConnection

from chassis.consumer import MessageConsumer, Rejected
from chassis.topology import QueueSpec
from contracts.codec import ContractError, parse_event
from contracts.events import JobAbandoned, JobFinished, JobMissed
from notifier.dispatcher import Dispatcher
from notifier.history import OutcomeEvent
from notifier.intake import Claim, Planning, record_outcome
from notifier.metrics import EVENTS_CONSUMED

log = logging.getLogger(__name__)

PREFETCH = 10


def parse_outcome(body: bytes) -> OutcomeEvent:
    """The outcome event ``body`` carries; raises ``Rejected`` with the reason for any other."""
    try:
        event = parse_event(body)
    except ContractError as exc:
        raise Rejected(str(exc), cause="invalid") from exc
    if not isinstance(event, JobFinished | JobAbandoned | JobMissed):
        reason = f"the notifier does not handle {event.event_type} (bound by mistake?)"
        raise Rejected(reason, cause="unexpected")
    return event


class OutcomeHandler:
    """Records an outcome event and hands its claimed records to the dispatcher."""

    def __init__(self, pool: asyncpg.Pool, planning: Planning, dispatcher: Dispatcher) -> None:
        self._pool = pool
        self._planning = planning
        self._dispatcher = dispatcher

    async def __call__(self, event: OutcomeEvent) -> None:
        """Record ``event`` (idempotent); raises the database's error if it could not."""
        extra = {"job_id": event.job_id, "event_id": event.event_id}
        claim = Claim(self._dispatcher)
        try:
            async with self._pool.acquire() as conn:
                recorded = await record_outcome(conn, event, self._planning, claim)
                # Committed: the claimed records go out now (a redelivery, should the ack be
                # lost, creates nothing). One yield lets their requests be written before the
                # ack and the pool's reset take the loop.
                claim.hand_over(recorded.claimed)
                await asyncio.sleep(0)
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


def outcome_consumer(
    connection: AbstractRobustConnection, queue: QueueSpec, handler: OutcomeHandler
) -> MessageConsumer[OutcomeEvent]:
    """The consumer of the notifier's queue, handing each outcome event to ``handler``."""
    return MessageConsumer(
        connection,
        queue,
        parse_outcome,
        handler,
        prefetch=PREFETCH,
        on_dead_letter=lambda _: EVENTS_CONSUMED.labels("dead-lettered").inc(),
        on_requeue=lambda: EVENTS_CONSUMED.labels("requeued").inc(),
    )
