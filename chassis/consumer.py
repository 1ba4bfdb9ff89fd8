"""One way to consume a queue: parse at the edge, hand a model to a typed handler, settle after.

| what happens                                 | what becomes of the message                    |
|----------------------------------------------|------------------------------------------------|
| ``parse(body)`` raises :class:`Rejected`     | dead-lettered with the reason                  |
| the handler returns                          | acked (the handler committed its work)         |
| the handler raises :class:`Rejected`         | dead-lettered with the reason                  |
| the handler raises a transient error         | requeued after a pause                         |
| the handler raises anything else             | logged with its traceback, requeued after a    |
|                                              | pause (the queue's delivery limit bounds it)   |
| the handler acked it early, then raised      | logged with its traceback; it stays acked      |
| the channel is gone under an ack or a nack   | logged; the broker redelivers it               |

:class:`MessageConsumer` hands one model at a time to its handler, up to ``prefetch`` at once
(``concurrency`` bounds that further; 1 handles messages one after another, in order).
:class:`DeliveryConsumer` also hands the :class:`~chassis.delivery.Delivery`, so a handler
whose work goes on after its commit can ack early.
:class:`chassis.batch_consumer.BatchConsumer` hands batches. Both sit on a re-attaching
:class:`chassis.attachment.Attachment` (their watch attaches a lost consumer again), count what
they received and handled (:class:`DeliveryProgress`), and on :meth:`stop` take no new message
and let those in hand finish within a timeout. A dead letter is confirmed by the broker before
its original is acked. Handlers must tolerate a redelivery: an ack can be lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Generic, TypedDict, TypeVar, Unpack

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection

from chassis.attachment import CHANNEL_GONE_ERRORS, Attachment, watch_attachment
from chassis.broker import publisher_channel
from chassis.deadletter import dead_letter
from chassis.delivery import Delivery, requeue
from chassis.delivery import Rejected as Rejected
from chassis.delivery import ack as ack
from chassis.delivery import channel_closed as channel_closed
from chassis.progress import DeliveryProgress
from chassis.retry import describe, is_transient_database_error
from chassis.topology import QueueSpec

log = logging.getLogger(__name__)

M = TypeVar("M")

REQUEUE_PAUSE_S = 1.0
"""Pause before requeueing a message that failed, so an outage is not a spin."""
WATCH_INTERVAL_S = 5.0
"""How often the watch checks that the queue still has our consumer."""


_DEAD_LETTER_ERRORS: tuple[type[BaseException], ...] = (*CHANNEL_GONE_ERRORS, TimeoutError)


Parse = Callable[[bytes], M]
"""Returns the model a body carries; raises :class:`Rejected` for a body that is none."""


def _ignore() -> None:
    pass


def _ignore_rejected(_: Rejected) -> None:
    pass


class SettlingOptions(TypedDict, total=False):
    """How every consumer settles a message: what is transient, hooks for the metrics, pauses.

    Defaults: :func:`chassis.retry.is_transient_database_error`, no hooks,
    :data:`REQUEUE_PAUSE_S`, :data:`WATCH_INTERVAL_S`.
    """

    is_transient: Callable[[BaseException], bool]
    on_dead_letter: Callable[[Rejected], None]
    on_requeue: Callable[[], None]
    requeue_pause_s: float
    watch_interval_s: float


class QueueConsumer(ABC):
    """What every consumer shares: the attachment, its watch, dead letters, settling, stop."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        queue: QueueSpec,
        prefetch: int,
        **settling: Unpack[SettlingOptions],
    ) -> None:
        self._connection = connection
        self._spec = queue
        self._is_transient = settling.get("is_transient", is_transient_database_error)
        self._on_dead_letter = settling.get("on_dead_letter", _ignore_rejected)
        self._on_requeue = settling.get("on_requeue", _ignore)
        self._requeue_pause_s = settling.get("requeue_pause_s", REQUEUE_PAUSE_S)
        self._watch_interval_s = settling.get("watch_interval_s", WATCH_INTERVAL_S)
        self._attachment = Attachment(connection, queue, prefetch, self._on_message)
        self._dead_channel: AbstractChannel | None = None
        self._stopping = False
        self.progress = DeliveryProgress()

    @property
    def attachment(self) -> Attachment:
        """The consumer on the queue: what the watch re-attaches."""
        return self._attachment

    async def problem(self) -> str | None:
        """None while our consumer consumes the queue, else what is wrong (a readiness check)."""
        return await self._attachment.problem()

    async def start(self) -> None:
        """Open the dead-letter channel and attach; raises the broker's error if it cannot."""
        self._dead_channel = await publisher_channel(self._connection)
        await self._attachment.attach()
        log.info("consuming %s", self._spec.name, extra={"queue": self._spec.name})

    async def run(self) -> None:
        """Watch the attachment (and do the consumer's own work) until :meth:`stop`."""
        watch = asyncio.create_task(
            watch_attachment(self._attachment, self._watch_interval_s), name="consumer-watch"
        )
        try:
            await self._work()
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch

    @abstractmethod
    async def _work(self) -> None:
        """Handle what arrives until stopped (one message at a time, or batches)."""

    @abstractmethod
    async def _on_message(self, message: AbstractIncomingMessage) -> None: ...

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Take no new message, let those in hand finish for up to ``timeout_s``; idempotent.

        What is not finished by then is stopped; its messages go back to the queue.
        """
        if self._stopping:
            return
        self._stopping = True
        await self._attachment.detach()
        await self._finish(timeout_s)
        if self._dead_channel is not None:
            with contextlib.suppress(*CHANNEL_GONE_ERRORS, TimeoutError):
                await asyncio.wait_for(self._dead_channel.close(), 5.0)

    @abstractmethod
    async def _finish(self, timeout_s: float) -> None:
        """Let the messages in hand finish for up to ``timeout_s``, then stop the rest."""

    async def _dead_letter(self, message: AbstractIncomingMessage, rejected: Rejected) -> None:
        """Dead-letter ``message`` with the reason; if the broker cannot take it, requeue it."""
        if self._dead_channel is None:
            raise RuntimeError(f"{type(self).__name__}.start() was not called")
        try:
            await dead_letter(
                self._dead_channel, message, self._spec.dead_letter_queue, rejected.reason
            )
        except _DEAD_LETTER_ERRORS as exc:
            log.warning("could not dead-letter %s, requeued: %s", message.message_id, exc)
            await requeue(message)
            return
        self._on_dead_letter(rejected)

    async def _requeue_after_failure(
        self, messages: list[AbstractIncomingMessage], exc: Exception
    ) -> None:
        """Log why ``messages`` failed (a traceback unless transient), pause, requeue them."""
        which = (
            f"message {messages[0].message_id}"
            if len(messages) == 1
            else f"{len(messages)} messages"
        )
        if self._is_transient(exc):
            log.warning("cannot handle %s, requeueing: %s", which, describe(exc))
        else:
            log.exception("handling %s failed; requeueing", which)
        for _ in messages:
            self._on_requeue()
        await asyncio.sleep(self._requeue_pause_s)
        for message in messages:
            await requeue(message)


class ConsumerOptions(SettlingOptions, total=False):
    """How a :class:`DeliveryConsumer` consumes, beyond its queue, parser and handler."""

    prefetch: int
    concurrency: int | None


class DeliveryConsumer(QueueConsumer, Generic[M]):
    """Hands each message's model and its :class:`Delivery` to ``handler``, which may ack it
    before it returns; acks it once the handler returned (module docstring). Once acked, a
    failing handler is logged and nothing comes back."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        queue: QueueSpec,
        parse: Parse[M],
        handler: Callable[[M, Delivery], Awaitable[object]],
        *,
        prefetch: int = 10,
        concurrency: int | None = None,
        **settling: Unpack[SettlingOptions],
    ) -> None:
        """``concurrency`` bounds how many handlers run at once (default: ``prefetch``)."""
        super().__init__(connection, queue, prefetch, **settling)
        self._parse = parse
        self._handler = handler
        self._slots = asyncio.Semaphore(concurrency or prefetch)
        self._handling: set[asyncio.Task[None]] = set()
        self._stopped = asyncio.Event()

    async def _work(self) -> None:
        await self._stopped.wait()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        # aio-pika cancels a channel's callbacks when its connection breaks; the handling is a
        # task of this consumer instead, so a handler that acked early (a run going on) outlives
        # the channel, and only stop() cancels it.
        handling = asyncio.create_task(self._take(message))
        self._handling.add(handling)
        handling.add_done_callback(self._handling.discard)
        await asyncio.shield(handling)

    async def _take(self, message: AbstractIncomingMessage) -> None:
        self.progress.note_received()
        try:
            try:
                await self._slots.acquire()
            except asyncio.CancelledError:
                await requeue(message)
                raise
            try:
                if self._stopping:
                    await requeue(message)
                elif not channel_closed(message):
                    # (A message of a channel since closed was taken back by the broker.)
                    await self.handle(message)
            finally:
                self._slots.release()
        finally:
            await self.progress.note_handled(1)

    async def handle(self, message: AbstractIncomingMessage) -> None:
        """Parse, handle and settle ``message``; raises nothing but a cancellation (which
        gives the message back to the queue if its handler had not returned)."""
        delivery = Delivery(message)
        try:
            model = self._parse(message.body)
            await self._handler(model, delivery)
        except asyncio.CancelledError:
            if not delivery.acked:
                await requeue(message)
            raise
        except Exception as exc:
            if delivery.acked:
                log.exception("handling acked message %s failed", message.message_id)
            elif isinstance(exc, Rejected):
                await self._dead_letter(message, exc)
            else:
                await self._requeue_after_failure([message], exc)
        else:
            await delivery.ack()

    async def _finish(self, timeout_s: float) -> None:
        if self._handling:
            _, pending = await asyncio.wait(list(self._handling), timeout=timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._stopped.set()


class MessageConsumer(DeliveryConsumer[M]):
    """Hands each message's model to ``handler``; acks once it returned (module docstring)."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        queue: QueueSpec,
        parse: Parse[M],
        handler: Callable[[M], Awaitable[object]],
        **options: Unpack[ConsumerOptions],
    ) -> None:
        async def without_delivery(model: M, _: Delivery) -> object:
            return await handler(model)

        super().__init__(connection, queue, parse, without_delivery, **options)
