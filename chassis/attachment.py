"""Whether a service is really consuming: one consumer's attachment, readiness, re-attachment.

After a broker restart aio-pika's robust connection has been seen to come back without its
consumer on the queue (aio-pika issues #231, #334): the process looks healthy and consumes
nothing. So :meth:`Attachment.problem` (a readiness check) asks both our channel (is our
consumer tag registered?) and the broker (does the queue have a consumer?), and
:func:`watch_attachment` re-attaches a lost consumer by itself.

Re-attaching starts from scratch on a fresh channel rather than cancelling and consuming again
on the old one: the old channel may be closed or half-restored, and an operation on it can
raise or wait for a reconnect that never completes it. Every broker call here is time-bounded.
Closing the old channel returns its unacked deliveries to the queue, so a consumer using this
must tolerate redeliveries (ours deduplicate by event id) and an ack failing on a closed channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)

from chassis.topology import QueueSpec

log = logging.getLogger(__name__)

BROKER_CALL_TIMEOUT_S = 5.0
"""Bound of one broker operation of attaching or detaching (a half-restored channel can hang)."""

OnMessage = Callable[[AbstractIncomingMessage], Awaitable[None]]

CHANNEL_GONE_ERRORS: tuple[type[BaseException], ...] = (
    aio_pika.exceptions.AMQPError,
    # What aio-pika raises for a message or channel whose channel has closed (a RuntimeError,
    # not an AMQPError): e.g. acking a message after a broker restart or a re-attach.
    aio_pika.exceptions.ChannelInvalidStateError,
)
"""Errors that say the broker or our channel went away under a message: what was not acked
comes back once the consumer is attached again, so a consumer logs them and goes on."""


class Attachment:
    """One consumer on one queue, on a channel of its own; replaced whole when it is lost.

    Once :meth:`detach` was called it stays detached: nothing attaches it again.
    """

    def __init__(
        self,
        connection: AbstractRobustConnection,
        spec: QueueSpec,
        prefetch: int,
        on_message: OnMessage,
    ) -> None:
        self._connection = connection
        self._spec = spec
        self._prefetch = prefetch
        self._on_message = on_message
        self._detached = False
        self.channel: AbstractRobustChannel | None = None
        self.queue: AbstractQueue | None = None
        self.consumer_tag: str | None = None
        self.attached_at: float | None = None
        """``time.monotonic()`` of the last successful (re)attach; None before the first."""

    @property
    def queue_name(self) -> str:
        return self._spec.name

    @property
    def detached(self) -> bool:
        """True once :meth:`detach` was called (the service is stopping)."""
        return self._detached

    async def attach(self) -> None:
        """Open a fresh channel, declare the queue and consume it; then drop the old channel.

        Raises the broker's error (or ``TimeoutError``) if any step fails; the previous
        attachment, if any, is then kept as it was. Not idempotent: each call adds a channel.
        After :meth:`detach` (even one that ran while this call waited) it leaves nothing
        consuming.
        """
        if self._detached:
            return
        channel = await asyncio.wait_for(self._connection.channel(), BROKER_CALL_TIMEOUT_S)
        try:
            async with asyncio.timeout(BROKER_CALL_TIMEOUT_S):
                await channel.set_qos(prefetch_count=self._prefetch)
                queue = await channel.declare_queue(
                    self._spec.name, durable=True, arguments=self._spec.arguments()
                )
                tag = await queue.consume(self._on_message, no_ack=False)
        except BaseException:
            await _close_quietly(channel)
            raise
        if self._detached:
            # A stop won the race against a re-attach: consuming now would outlive the stop.
            await _close_quietly(channel)
            return
        old = self.channel
        self.channel, self.queue, self.consumer_tag = channel, queue, tag
        self.attached_at = time.monotonic()
        if old is not None:
            # Its unacked deliveries go back to the queue; those already handled come back as
            # duplicates, which the consumers deduplicate.
            await _close_quietly(old)

    async def detach(self) -> None:
        """Cancel the consumer, at most :data:`BROKER_CALL_TIMEOUT_S`; never raises.

        Idempotent. Unacked deliveries go back to the queue when the channel closes anyway.
        """
        self._detached = True
        queue, tag, self.consumer_tag = self.queue, self.consumer_tag, None
        if queue is None or tag is None or self._connection.is_closed:
            return
        try:
            await asyncio.wait_for(queue.cancel(tag), BROKER_CALL_TIMEOUT_S)
        except (aio_pika.exceptions.AMQPError, TimeoutError, RuntimeError) as exc:
            log.warning("could not cancel the consumer cleanly: %s", exc or type(exc).__name__)

    async def is_attached(self) -> bool:
        """Whether our channel is open and has our consumer tag registered.

        Waits for a reconnect in progress (the caller bounds it).
        """
        if self.channel is None or self.consumer_tag is None or self.channel.is_closed:
            return False
        underlay = await self.channel.get_underlay_channel()
        return has_consumer(underlay, self.consumer_tag)

    async def reattach_if_lost(self) -> bool:
        """Attach afresh if our consumer is gone while the connection is up; True if it did.

        Waits for a reconnect in progress (the caller bounds it), then gives aio-pika's own
        restore of the channel :data:`BROKER_CALL_TIMEOUT_S` to finish before judging it.
        Raises the broker's error (or ``TimeoutError``) if attaching failed: try again later.
        """
        if self._detached or self.channel is None or self._connection.is_closed:
            return False
        await self._connection.ready()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.channel.ready(), BROKER_CALL_TIMEOUT_S)
        if self._detached or await self.is_attached():
            return False
        log.warning(
            "consumer %s on %s was lost; consuming again on a fresh channel",
            self.consumer_tag,
            self._spec.name,
            extra={"queue": self._spec.name},
        )
        await self.attach()
        return not self._detached

    async def problem(self) -> str | None:
        """None while our consumer consumes the queue, else what is wrong (a readiness check).

        Asks our channel first, then the broker. Waits for a reconnect in progress (the caller
        bounds it); raises the broker's error if the broker cannot be asked.
        """
        if self._detached:
            return "stopping"
        if self.channel is None or self.consumer_tag is None:
            return "consumer not started"
        if self._connection.is_closed:
            return "broker connection closed"
        if not await self.is_attached():
            return f"consumer {self.consumer_tag} is not attached to {self._spec.name}"
        if await broker_consumer_count(self._connection, self._spec.name) < 1:
            return f"the broker sees no consumer on {self._spec.name}"
        return None


async def _close_quietly(channel: AbstractChannel) -> None:
    with contextlib.suppress(aio_pika.exceptions.AMQPError, TimeoutError, RuntimeError):
        await asyncio.wait_for(channel.close(), BROKER_CALL_TIMEOUT_S)


def has_consumer(channel: object, tag: str | None) -> bool:
    """Whether ``tag`` is a consumer the broker confirmed on ``channel`` (an aiormq channel)."""
    # aiormq's channel keeps the consumers the broker confirmed and drops one the broker
    # cancels; the abstract type does not declare the attribute.
    consumers = getattr(channel, "consumers", {})
    return tag is not None and tag in consumers


async def broker_consumer_count(connection: AbstractRobustConnection, queue_name: str) -> int:
    """How many consumers the broker counts on ``queue_name``, whoever holds them.

    A passive declare on a throwaway channel: it changes nothing. Raises the broker's error
    (``ChannelNotFoundEntity`` when the queue does not exist).
    """
    declared = await _declare_passive(connection, queue_name)
    return declared.declaration_result.consumer_count or 0


async def broker_ready_count(connection: AbstractRobustConnection, queue_name: str) -> int:
    """How many messages wait in ``queue_name`` ready for delivery (not those delivered and
    not yet acked): the backlog no consumer holds yet.

    A passive declare on a throwaway channel, like :func:`broker_consumer_count`; raises the
    broker's error.
    """
    declared = await _declare_passive(connection, queue_name)
    return declared.declaration_result.message_count or 0


async def _declare_passive(connection: AbstractRobustConnection, queue_name: str) -> AbstractQueue:
    async with await connection.channel() as probe:
        return await probe.declare_queue(queue_name, passive=True)


class Reattachable(Protocol):
    """What :func:`watch_attachment` watches (an :class:`Attachment`)."""

    @property
    def detached(self) -> bool: ...

    async def reattach_if_lost(self) -> bool: ...


async def watch_attachment(
    attachment: Reattachable, interval_s: float = 5.0, *, attempt_timeout_s: float | None = None
) -> None:
    """Every ``interval_s``, re-attach ``attachment`` if it was lost; returns once detached.

    Never raises otherwise: a failed attempt (a half-restored connection, a broker still
    starting) is logged and tried again at the next tick, each attempt bounded by
    ``attempt_timeout_s`` (default: three intervals, at least 15 s).
    """
    timeout_s = max(3 * interval_s, 15.0) if attempt_timeout_s is None else attempt_timeout_s
    while not attachment.detached:
        await asyncio.sleep(interval_s)
        try:
            await asyncio.wait_for(attachment.reattach_if_lost(), timeout=timeout_s)
        except Exception as exc:  # the watch must outlive any state the broker is in
            log.warning(
                "could not check or re-attach the consumer: %s: %s", type(exc).__name__, exc
            )
