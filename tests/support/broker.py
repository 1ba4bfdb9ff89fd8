"""Test helpers that read what really arrived on RabbitMQ, with a deadline, never a bare sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from chassis.broker import declare_topology
from chassis.topology import Topology
from contracts.topology import BrokerNames

T = TypeVar("T")


async def tap_queue(
    channel: AbstractChannel, exchange: str, binding: str = "#", name: str = ""
) -> AbstractQueue:
    """A queue bound to ``exchange`` that collects what is published, for a test to read."""
    queue = await channel.declare_queue(name, exclusive=not name, auto_delete=not name)
    await queue.bind(exchange, routing_key=binding)
    return queue


async def tap_exchange(
    amqp: AbstractRobustConnection, topology: BrokerNames, binding: str = "#"
) -> AbstractQueue:
    """Declare ``topology`` (as a service would at start), then :func:`tap_queue` its exchange."""
    channel = await amqp.channel()
    await declare_topology(channel, Topology.of(topology))
    return await tap_queue(channel, topology.exchange, binding)


async def consumer_count(amqp: AbstractRobustConnection, queue: str) -> int:
    """Consumers the broker counts on ``queue`` (a passive declare); 0 while it does not exist."""
    channel = await amqp.channel()
    try:
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.consumer_count or 0)
    except aio_pika.exceptions.ChannelClosed:
        return 0
    finally:
        if not channel.is_closed:
            await channel.close()


async def collect(
    queue: AbstractQueue, count: int, timeout_s: float = 15.0
) -> list[AbstractIncomingMessage]:
    """Read ``count`` messages (acking them); raise ``AssertionError`` if they don't come."""
    got: list[AbstractIncomingMessage] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < count:
        message = await queue.get(fail=False, no_ack=False)
        if message is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} messages on {queue.name}, got {len(got)}")
            await asyncio.sleep(0.05)
            continue
        await message.ack()
        got.append(message)
    return got


async def drain(queue: AbstractQueue, quiet_s: float = 0.5) -> list[AbstractIncomingMessage]:
    """Read everything until the queue stays empty for ``quiet_s``."""
    got: list[AbstractIncomingMessage] = []
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < quiet_s:
        message = await queue.get(fail=False, no_ack=False)
        if message is None:
            await asyncio.sleep(0.05)
            continue
        await message.ack()
        got.append(message)
        quiet_since = time.monotonic()
    return got


async def eventually(
    probe: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool],
    timeout_s: float = 20.0,
    interval_s: float = 0.1,
) -> T:
    """Poll ``probe`` until ``accept`` says yes; raise ``AssertionError`` with the last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await probe()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s; last value: {value!r}")
        await asyncio.sleep(interval_s)


def persistent(message: aio_pika.abc.AbstractMessage) -> bool:
    return message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
