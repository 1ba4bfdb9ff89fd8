"""One delivered message as a handler settles it: ack, requeue, a once-only ack, rejection.

:func:`ack` and :func:`requeue` never raise for a channel that is gone (the broker then takes
the message back itself); :class:`Delivery` is what a handler of
:class:`chassis.consumer.DeliveryConsumer` is handed, so it can ack a message whose work is
committed while the handler goes on (a long run, say).
"""

from __future__ import annotations

import logging

from aio_pika.abc import AbstractIncomingMessage

from chassis.attachment import CHANNEL_GONE_ERRORS

log = logging.getLogger(__name__)


class Rejected(Exception):
    """A message that must not come back: it is dead-lettered with ``reason``.

    ``cause`` is a short label for metrics (``invalid``, ``rejected``, ``sequence_conflict``).
    """

    def __init__(self, reason: str, *, cause: str = "rejected") -> None:
        super().__init__(reason)
        self.reason = reason
        self.cause = cause


async def ack(message: AbstractIncomingMessage, *, multiple: bool = False) -> None:
    """Ack ``message``; an ack the gone channel cannot take is logged (it comes back)."""
    try:
        await message.ack(multiple=multiple)
    except CHANNEL_GONE_ERRORS as exc:
        log.warning("could not ack %s (it will be redelivered): %s", message.message_id, exc)


async def requeue(message: AbstractIncomingMessage) -> None:
    """Give ``message`` back to the queue; on a gone channel the broker does that itself."""
    try:
        await message.nack(requeue=True)
    except CHANNEL_GONE_ERRORS as exc:
        log.warning("could not requeue %s (redelivered anyway): %s", message.message_id, exc)


def channel_closed(message: AbstractIncomingMessage) -> bool:
    """Whether the channel ``message`` came on is closed (the broker took it back)."""
    try:
        return message.channel.is_closed
    except CHANNEL_GONE_ERRORS:
        return True


class Delivery:
    """A message in hand: acked at most once, by the handler early or by the consumer after."""

    def __init__(self, message: AbstractIncomingMessage) -> None:
        self.message = message
        self.acked = False

    async def ack(self) -> None:
        """Ack the message now (once; later calls do nothing). The broker will not deliver it
        again, whatever the handler does next; an ack the gone channel cannot take is logged."""
        if self.acked:
            return
        self.acked = True
        await ack(self.message)
