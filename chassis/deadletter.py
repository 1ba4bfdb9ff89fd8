"""Dead letters: putting a message aside with its reason, and the operator's tools for them.

A consumer that cannot parse or validate a message calls :func:`dead_letter`: the message goes
to the queue's dead-letter queue with the reason in its headers (confirmed by the broker), and
only then is the original acked. Messages that keep failing are dead-lettered by the broker
itself through the queue's ``x-delivery-limit``. Nothing is dropped silently.

:func:`list_dead_letters` browses a dead-letter queue (every message taken with ``basic.get``,
unacked, so none comes back twice in one pass, and all returned to the queue at the end);
:func:`replay_dead_letters` publishes a copy with a publisher confirm, and only then acks
(removes) the dead letter. An event goes back to its exchange under its original routing key;
a command goes back into its queue through the default exchange, by the queue's name. A crash
in between leaves the message in both places: consumers deduplicate.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection

from chassis.broker import publisher_channel

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
    copy = _persistent_copy(message, headers)
    await channel.default_exchange.publish(copy, routing_key=dead_queue, mandatory=True)
    await message.ack()
    log.warning(
        "dead-lettered message %s from %s: %s",
        message.message_id,
        message.routing_key,
        reason,
        extra={"queue": dead_queue},
    )


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
    connection: AbstractRobustConnection, dead_queue: str
) -> list[DeadLetter]:
    """Every message in ``dead_queue``, left in the queue (browsed, then requeued)."""
    channel = await connection.channel()
    try:
        queue = await channel.get_queue(dead_queue)
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
    dead_queue: str,
    exchange_name: str,
    *,
    message_ids: set[str] | None = None,
    routing_key: str | None = None,
) -> list[DeadLetter]:
    """Republish to ``exchange_name`` the dead letters of ``dead_queue`` whose message id is
    in ``message_ids`` (all when None), each under ``routing_key`` or, when None, under its
    original routing key. ``exchange_name`` ``""`` with a queue's name as ``routing_key`` puts
    them straight back into that queue (the default exchange routes by queue name).

    Returns what was replayed; the others stay in the queue. Raises the broker's error if a
    publish is not confirmed or not routed (that message then stays dead-lettered).
    """
    channel = await connection.channel()
    publisher = await publisher_channel(connection)
    try:
        queue = await channel.get_queue(dead_queue)
        exchange = (
            publisher.default_exchange
            if exchange_name == ""
            else await publisher.get_exchange(exchange_name)
        )
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
                key = letter.routing_key if routing_key is None else routing_key
                await exchange.publish(_original(message), key, mandatory=True)
                await message.ack()
                replayed.append(letter)
                log.info(
                    "replayed dead letter %s to %s",
                    message.message_id,
                    key,
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
    return _persistent_copy(message, headers)


def _persistent_copy(message: AbstractIncomingMessage, headers: dict[str, Any]) -> aio_pika.Message:
    """``message``'s body and properties, persistent, with ``headers`` instead of its own."""
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


async def dead_letter_command(
    connection: AbstractRobustConnection,
    action: str,
    dead_queue: str,
    exchange_name: str,
    message_ids: list[str] | None = None,
    *,
    routing_key: str | None = None,
) -> int:
    """``<service> dead-letters list|replay``: print the dead letters (tab-separated, one per
    line) or replay them to ``exchange_name`` (under ``routing_key``, or each one's original
    routing key: see :func:`replay_dead_letters`); a count on stderr. Returns the exit code
    (0)."""
    if action == "list":
        letters = await list_dead_letters(connection, dead_queue)
        print("message_id\trouting_key\tdead_lettered_at\treason\tbody")
    else:
        ids = set(message_ids) if message_ids else None
        letters = await replay_dead_letters(
            connection, dead_queue, exchange_name, message_ids=ids, routing_key=routing_key
        )
    for letter in letters:
        print(letter.describe())
    verb = "dead letter(s) in" if action == "list" else "replayed from"
    print(f"{len(letters)} {verb} {dead_queue}", file=sys.stderr)
    return 0


def add_dead_letter_commands(
    commands: argparse._SubParsersAction[Any],
    help_text: str,
    *,
    noun: str = "dead letter",
    replay_help: str = "put dead letters back on the exchange",
    **subparser_options: Any,
) -> None:
    """Add ``dead-letters list|replay (--id MESSAGE_ID ... | --all)`` to a service's commands;
    ``args.action`` and ``args.ids`` then feed :func:`dead_letter_command`."""
    dead = commands.add_parser("dead-letters", help=help_text)
    actions = dead.add_subparsers(dest="action", required=True, **subparser_options)
    actions.add_parser("list", help=f"show each {noun} with its reason")
    replay = actions.add_parser("replay", help=replay_help)
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--id",
        dest="ids",
        action="append",
        metavar="MESSAGE_ID",
        help=f"replay the {noun} with this message id (repeatable)",
    )
    which.add_argument("--all", action="store_true", help=f"replay every {noun}")
