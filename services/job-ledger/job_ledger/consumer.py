"""The ledger's consumer: messages in batches, one transaction per batch, ack after commit.

A batch is up to ``batch_size`` messages, or what arrived within ``batch_wait`` after its first.
Invalid messages are dead-lettered at once with the reason; the rest are stored and folded in
one transaction (:func:`job_ledger.recording.record_events`) and acked only after it committed.
While Postgres is unreachable the batch stays unacked and is retried with backoff, so the
consumer resumes by itself. A (job_id, sequence) taken by another event is a contract
violation: that message is dead-lettered, the others go on. A batch the database rejects for
its content (not its availability) is retried one message at a time and the rejected message
dead-lettered, so one bad value cannot stall the queue. Parsing yields to the event loop
every :data:`PARSE_CHUNK` messages, so a full batch does not hold the loop (and whatever else
it serves, the API in ``serve --role all``) for the whole of its parse.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from uuid import UUID

import aio_pika
import asyncpg
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection

from chassis.attachment import CHANNEL_GONE_ERRORS, Attachment
from chassis.broker import publisher_channel
from chassis.database import TRANSIENT_DATABASE_ERRORS
from chassis.deadletter import dead_letter
from chassis.topology import QueueSpec
from contracts.codec import ContractError, parse_event
from contracts.events import Event, utc_now
from job_ledger import metrics
from job_ledger.catch_up import DeliveryProgress
from job_ledger.event_store import StoreResult
from job_ledger.recording import record_events

log = logging.getLogger(__name__)

_LOGGED_TYPES = frozenset({"JobStarted", "JobFinished", "JobAbandoned", "JobMissed"})

PARSE_CHUNK = 50
"""Messages parsed between two yields to the event loop (a yield costs about a microsecond,
parsing 50 messages about a millisecond)."""


class EventConsumer:
    """Consumes the ledger queue until :meth:`stop`; see the module docstring.

    ``start`` opens the channels and attaches the consumer; ``run`` folds batches until stopped
    and returns after the messages already received are handled (acked or dead-lettered).
    ``progress`` counts the messages received and handled (what the watchdog's gate waits for).
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        connection: AbstractRobustConnection,
        queue: QueueSpec,
        *,
        batch_size: int = 500,
        batch_wait: timedelta = timedelta(milliseconds=50),
        max_backoff_s: float = 10.0,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._pool = pool
        self._connection = connection
        self._spec = queue
        self._batch_size = batch_size
        self._batch_wait_s = batch_wait.total_seconds()
        self._max_backoff_s = max_backoff_s
        self._clock = clock
        # A little above the batch size: a full batch can form while the previous one commits.
        self.prefetch = batch_size + max(10, batch_size // 5)
        self._inbox: asyncio.Queue[AbstractIncomingMessage | None] = asyncio.Queue()
        self.progress = DeliveryProgress()
        self._attachment = Attachment(connection, queue, self.prefetch, self._on_message)
        self._dead_channel: AbstractChannel | None = None
        self._stopping = False

    async def start(self) -> None:
        """Open the consuming and dead-letter channels and attach the consumer."""
        self._dead_channel = await publisher_channel(self._connection)
        await self._attachment.attach()
        log.info(
            "consuming %s (batches of up to %d, prefetch %d)",
            self._spec.name,
            self._batch_size,
            self.prefetch,
            extra={"queue": self._spec.name},
        )

    @property
    def attachment(self) -> Attachment:
        """The consumer on the queue: its readiness check, and what the watch re-attaches."""
        return self._attachment

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self.progress.note_received()
        self._inbox.put_nowait(message)

    async def stop(self) -> None:
        """Stop taking deliveries; :meth:`run` then handles what it holds and returns."""
        if self._stopping:
            return
        self._stopping = True
        # Time-bounded: during a broker outage a cancel would wait for the reconnect.
        await self._attachment.detach()
        self._inbox.put_nowait(None)

    async def run(self) -> None:
        """Fold batches until :meth:`stop`; raises what is not a transient database error.

        The broker going away under a batch is not an error of the consumer: the batch is
        left to the broker to redeliver and the next one is taken.
        """
        done = False
        while not done:
            batch, done = await self._next_batch()
            if not batch:
                continue
            try:
                await self.handle_batch(batch)
            except CHANNEL_GONE_ERRORS as exc:
                log.warning(
                    "the broker went away under a batch of %d (it will be redelivered): %s",
                    len(batch),
                    f"{type(exc).__name__}: {exc}",
                )
            finally:
                await self.progress.note_handled(len(batch))

    async def _next_batch(self) -> tuple[list[AbstractIncomingMessage], bool]:
        first = await self._inbox.get()
        if first is None:
            return [], True
        batch = [first]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._batch_wait_s
        while len(batch) < self._batch_size:
            try:
                item = self._inbox.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._inbox.get(), remaining)
                except TimeoutError:
                    break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    async def handle_batch(self, batch: Sequence[AbstractIncomingMessage]) -> None:
        """Dead-letter the invalid messages, store and fold the rest, then ack them."""
        metrics.BATCH_SIZE.observe(len(batch))
        parsed: list[tuple[AbstractIncomingMessage, Event]] = []
        for index, message in enumerate(batch):
            if index and index % PARSE_CHUNK == 0:
                await asyncio.sleep(0)
            try:
                parsed.append((message, parse_event(message.body)))
            except ContractError as exc:
                await self._dead_letter(message, f"contract violation: {exc}", "invalid")
        if not parsed:
            return
        with metrics.BATCH_SECONDS.time():
            try:
                results = [await self._store([e for _, e in parsed])]
                groups = [parsed]
            except asyncpg.PostgresError as exc:
                if isinstance(exc, TRANSIENT_DATABASE_ERRORS):
                    raise
                log.warning("database rejected a batch (%s); storing one message at a time", exc)
                results, groups = await self._store_one_by_one(parsed)
        for group, result in zip(groups, results, strict=True):
            await self._settle(group, result)

    async def _store(self, events: list[Event]) -> StoreResult:
        """Store and fold ``events`` in one transaction, retrying while Postgres is away."""
        attempt = 0
        while True:
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    return await record_events(conn, events)
            except TRANSIENT_DATABASE_ERRORS as exc:
                attempt += 1
                metrics.DATABASE_RETRIES.inc()
                delay = min(self._max_backoff_s, 0.1 * 2 ** min(attempt, 10))
                delay *= random.uniform(0.5, 1.0)
                log.warning(
                    "cannot store a batch of %d events (attempt %d, retry in %.1fs): %s",
                    len(events),
                    attempt,
                    delay,
                    f"{type(exc).__name__}: {exc}",
                )
                await asyncio.sleep(delay)

    async def _store_one_by_one(
        self, parsed: list[tuple[AbstractIncomingMessage, Event]]
    ) -> tuple[list[StoreResult], list[list[tuple[AbstractIncomingMessage, Event]]]]:
        results: list[StoreResult] = []
        groups: list[list[tuple[AbstractIncomingMessage, Event]]] = []
        for message, event in parsed:
            try:
                results.append(await self._store([event]))
                groups.append([(message, event)])
            except asyncpg.PostgresError as exc:
                if isinstance(exc, TRANSIENT_DATABASE_ERRORS):
                    raise
                reason = f"database rejected the event: {type(exc).__name__}: {exc}"
                await self._dead_letter(message, reason, "rejected")
        return results, groups

    async def _settle(
        self, parsed: list[tuple[AbstractIncomingMessage, Event]], result: StoreResult
    ) -> None:
        by_id: dict[UUID, list[AbstractIncomingMessage]] = defaultdict(list)
        for message, event in parsed:
            by_id[event.event_id].append(message)
        conflicts = {e.event_id: e for e in result.conflicts}
        for event_id, event in conflicts.items():
            reason = (
                f"contract violation: sequence {event.sequence} of job {event.job_id} is"
                f" already taken by another event (this one is {event_id})"
            )
            for message in by_id.pop(event_id):
                await self._dead_letter(message, reason, "sequence_conflict")
        await self._ack_all([m for messages in by_id.values() for m in messages])
        self._record_metrics(result)

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

    async def _ack_all(self, messages: Sequence[AbstractIncomingMessage]) -> None:
        """Ack ``messages`` with one multiple-ack (of the highest tag) per channel.

        Safe because batches are taken in delivery order and each is settled before the next:
        every earlier delivery on that channel is this batch's or settled already.
        """
        last: dict[int, AbstractIncomingMessage] = {}
        orphans = 0
        for message in messages:
            try:
                key = id(message.channel)
            except aio_pika.exceptions.ChannelInvalidStateError:
                # Its channel closed (broker restart, re-attach): the broker redelivers it.
                orphans += 1
                continue
            held = last.get(key)
            if held is None or (message.delivery_tag or 0) > (held.delivery_tag or 0):
                last[key] = message
        for message in last.values():
            await self._ack(message, multiple=True)
        if orphans:
            log.warning(
                "%d stored messages not acked, their channel closed (they will be redelivered"
                " and ignored as duplicates)",
                orphans,
            )

    async def _ack(self, message: AbstractIncomingMessage, *, multiple: bool = False) -> None:
        try:
            await message.ack(multiple=multiple)
        except (aio_pika.exceptions.AMQPError, RuntimeError) as exc:
            # Committed already: the broker redelivers it and the event store ignores it.
            log.warning("could not ack %s (will be redelivered): %s", message.message_id, exc)

    async def _dead_letter(self, message: AbstractIncomingMessage, reason: str, cause: str) -> None:
        if self._dead_channel is None:
            raise RuntimeError("EventConsumer.start() was not called")
        try:
            await dead_letter(self._dead_channel, message, self._spec.dead_letter_queue, reason)
        except (aio_pika.exceptions.AMQPError, TimeoutError, RuntimeError) as exc:
            log.warning("could not dead-letter %s, requeued: %s", message.message_id, exc)
            try:
                await message.nack(requeue=True)
            except (aio_pika.exceptions.AMQPError, RuntimeError):
                log.warning("could not nack %s either; the broker will redeliver it", exc)
            return
        metrics.DEAD_LETTERED.labels(cause).inc()
