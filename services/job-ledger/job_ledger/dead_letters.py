"""Browse the ledger's dead-letter queue and put messages back on the events exchange.

Browsing takes every message with ``basic.get`` (unacked, so none comes back twice in one
pass) and returns them all to the queue at the end; replaying publishes a copy to the events
exchange under its original routing key with a publisher confirm, and only then acks (removes)
the dead letter. A crash in between leaves the message in both places: consumers deduplicate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from chassis.broker import publisher_channel
from chassis.deadletter import REASON_HEADER
from contracts.topology import Topology

log = logging.getLogger(__name__)

_DEAD_LETTER_HEADERS = (
    REASON_HEADER,
    "x-original-exchange",
    "x-original-routing-key",
    "x-dead-lettered-at",
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-delivery-count",
)


@dataclass(frozen=True)
class DeadLetter:
    """A message in the dead-letter queue, as an operator needs to see it."""

    message_id: str | None
    routing_key: str
    reason: str
    dead_lettered_at: str
    body: bytes

    def describe(self, preview: int = 200) -> str:
        text = self.body[:preview].decode("utf-8", errors="replace")
        more = "…" if len(self.body) > preview else ""
        return (
            f"{self.message_id or '-'}\t{self.routing_key or '-'}\t{self.dead_lettered_at}\t"
            f"{self.reason}\t{text}{more}"
        )


def describe_message(message: AbstractIncomingMessage) -> DeadLetter:
    """Where the message came from and why it is dead, from our headers or the broker's."""
    headers: dict[str, Any] = dict(message.headers or {})
    death = _first_death(headers)
    reason = _text(headers.get(REASON_HEADER))
    if not reason and death:
        # Dead-lettered by the broker itself (the queue's delivery limit, say).
        reason = f"broker: {_text(death.get('reason'))} after {_text(death.get('count'))} times"
    routing_key = _text(headers.get("x-original-routing-key"))
    if not routing_key and death:
        keys = death.get("routing-keys") or []
        routing_key = _text(keys[0]) if keys else ""
    when = _text(headers.get("x-dead-lettered-at"))
    if not when and death and isinstance(death.get("time"), datetime):
        when = death["time"].isoformat()
    return DeadLetter(
        message_id=message.message_id,
        routing_key=routing_key,
        reason=reason or "unknown",
        dead_lettered_at=when or "unknown",
        body=message.body,
    )


async def list_dead_letters(
    connection: AbstractRobustConnection, topology: Topology
) -> list[DeadLetter]:
    """Every message in the ledger's dead-letter queue, left in the queue."""
    channel = await connection.channel()
    try:
        queue = await channel.get_queue(topology.ledger.dead_letter_queue)
        held: list[AbstractIncomingMessage] = []
        try:
            while (message := await queue.get(no_ack=False, fail=False)) is not None:
                held.append(message)
            return [describe_message(m) for m in held]
        finally:
            for message in held:
                await message.nack(requeue=True)
    finally:
        await channel.close()


async def replay_dead_letters(
    connection: AbstractRobustConnection,
    topology: Topology,
    *,
    message_ids: set[str] | None = None,
) -> list[DeadLetter]:
    """Republish the dead letters whose message id is in ``message_ids`` (all when None).

    Returns what was replayed; the others stay in the queue. Raises the broker's error if a
    publish is not confirmed (that message then stays dead-lettered).
    """
    channel = await connection.channel()
    publisher = await publisher_channel(connection)
    try:
        queue = await channel.get_queue(topology.ledger.dead_letter_queue)
        exchange = await publisher.get_exchange(topology.exchange)
        held: list[AbstractIncomingMessage] = []
        replayed: list[DeadLetter] = []
        # Only what is there now: a replayed message that is still bad comes back to this
        # queue while we read it, and must not be replayed again in the same pass.
        count = (await channel.declare_queue(queue.name, passive=True)).declaration_result
        try:
            for _ in range(count.message_count or 0):
                message = await queue.get(no_ack=False, fail=False)
                if message is None:
                    break
                if message_ids is not None and message.message_id not in message_ids:
                    held.append(message)
                    continue
                letter = describe_message(message)
                await exchange.publish(_original(message), letter.routing_key, mandatory=True)
                await message.ack()
                replayed.append(letter)
                log.info(
                    "replayed dead letter %s to %s",
                    message.message_id,
                    letter.routing_key,
                    extra={"event_id": message.message_id},
                )
        finally:
            for message in held:
                await message.nack(requeue=True)
        return replayed
    finally:
        await publisher.close()
        await channel.close()


def _original(message: AbstractIncomingMessage) -> aio_pika.Message:
    headers = {k: v for k, v in (message.headers or {}).items() if k not in _DEAD_LETTER_HEADERS}
    return aio_pika.Message(
        body=message.body,
        content_type=message.content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message.message_id,
        type=message.type,
        timestamp=message.timestamp,
        headers=headers,
    )


def _first_death(headers: dict[str, Any]) -> dict[str, Any] | None:
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        return deaths[0]
    return None


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)
