"""Publishing synthetic events fast (a window of confirms in flight) or at a pace, and reading or
emptying the queues they land on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection

from bench.wire import WireEvent
from chassis.broker import publisher_channel


async def publish_pipelined(
    connection: AbstractRobustConnection,
    exchange_name: str,
    events: Iterator[WireEvent] | Sequence[WireEvent],
    *,
    window: int = 1000,
) -> tuple[int, float]:
    """Publish every event (persistent, mandatory) with up to ``window`` confirms in flight.

    Returns (count, seconds). Raises the first publish error (a return, a nack).
    """
    channel = await publisher_channel(connection)
    try:
        exchange = await channel.get_exchange(exchange_name, ensure=False)
        started = time.perf_counter()
        count = await _publish_window(exchange, events, window)
        return count, time.perf_counter() - started
    finally:
        await channel.close()


async def publish_paced(
    connection: AbstractRobustConnection, exchange_name: str, events: list[WireEvent], pace: int
) -> None:
    """Publish ``events`` (persistent, mandatory, confirmed) at ``pace`` events/s, in 20
    confirmed chunks a second, or pipelined as fast as the broker allows when ``pace`` is 0."""
    if not pace:
        await publish_pipelined(connection, exchange_name, events)
        return
    channel = await publisher_channel(connection)
    try:
        exchange = await channel.get_exchange(exchange_name, ensure=False)
        chunk = max(1, pace // 20)
        began = time.perf_counter()
        for start in range(0, len(events), chunk):
            delay = began + start / pace - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await asyncio.gather(
                *(
                    exchange.publish(e.message(), e.routing_key, mandatory=True)
                    for e in events[start : start + chunk]
                )
            )
    finally:
        await channel.close()


async def _publish_window(
    exchange: AbstractExchange, events: Iterator[WireEvent] | Sequence[WireEvent], window: int
) -> int:
    # A semaphore, not asyncio.wait over the window: that re-arms every pending future per
    # message and costs more CPU than the publishing itself.
    slots = asyncio.Semaphore(window)
    pending: set[asyncio.Future[Any]] = set()
    errors: list[BaseException] = []

    def settled(future: asyncio.Future[Any]) -> None:
        slots.release()
        pending.discard(future)
        if not future.cancelled() and future.exception() is not None:
            errors.append(future.exception())  # type: ignore[arg-type]

    count = 0
    for event in events:
        await slots.acquire()
        if errors:
            break
        future = asyncio.ensure_future(
            exchange.publish(event.message(), event.routing_key, mandatory=True)
        )
        future.add_done_callback(settled)
        pending.add(future)
        count += 1
    if pending:
        await asyncio.gather(*list(pending), return_exceptions=True)
    if errors:
        raise errors[0]
    return count


async def queue_depth(channel: AbstractChannel, name: str) -> int:
    """Messages ready on queue ``name`` (not counting unacked ones)."""
    queue = await channel.declare_queue(name, passive=True)
    return int(queue.declaration_result.message_count or 0)


async def purge(connection: AbstractRobustConnection, *names: str) -> None:
    """Drop every message ready on each queue of ``names``."""
    async with connection.channel() as channel:
        for name in names:
            queue = await channel.get_queue(name, ensure=False)
            await queue.purge()
