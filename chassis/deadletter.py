"""Dead-lettering a message by hand, with the reason, so nothing is dropped silently.

A consumer that cannot parse or validate a message calls :func:`dead_letter`: the message goes
to the queue's dead-letter queue with the reason in its headers (confirmed by the broker), and
only then is the original acked. Messages that keep failing are dead-lettered by the broker
itself through the queue's ``x-delivery-limit``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

log = logging.getLogger(__name__)

REASON_HEADER = "x-dead-letter-reason"


async def dead_letter(
    channel: AbstractChannel, message: AbstractIncomingMessage, dead_queue: str, reason: str
) -> None:
    """Copy ``message`` to ``dead_queue`` with ``reason``, wait for the confirm, ack the original.

    Raises the broker's error if the copy was not confirmed; the original is then not acked.
    """
    headers = dict(message.headers or {})
    headers[REASON_HEADER] = reason[:4000]
    headers["x-original-exchange"] = message.exchange or ""
    headers["x-original-routing-key"] = message.routing_key or ""
    headers["x-dead-lettered-at"] = datetime.now(UTC).isoformat()
    copy = aio_pika.Message(
        body=message.body,
        content_type=message.content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message.message_id,
        type=message.type,
        timestamp=message.timestamp,
        headers=headers,
    )
    await channel.default_exchange.publish(copy, routing_key=dead_queue, mandatory=True)
    await message.ack()
    log.warning(
        "dead-lettered message %s from %s: %s",
        message.message_id,
        message.routing_key,
        reason,
        extra={"queue": dead_queue},
    )
