"""Whether the ledger is really consuming: for ``/readyz``, and to re-attach a lost consumer.

After a broker restart aio-pika's robust connection has been seen to come back without its
consumer on the queue: the process looks healthy and folds nothing. So readiness asks both our
channel (is our consumer tag registered?) and the broker (does the queue have a consumer?), and
a watch loop re-attaches a lost consumer by itself.
"""

from __future__ import annotations

import asyncio
import logging

import aio_pika

from job_ledger.consumer import EventConsumer, has_consumer

log = logging.getLogger(__name__)


async def attachment_problem(consumer: EventConsumer) -> str | None:
    """None while ``consumer`` consumes its queue, else what is wrong (a readiness check)."""
    if consumer.stopping:
        return "stopping"
    if consumer.channel is None or consumer.consumer_tag is None:
        return "consumer not started"
    if consumer.connection.is_closed:
        return "broker connection closed"
    underlay = await consumer.channel.get_underlay_channel()
    if not has_consumer(underlay, consumer.consumer_tag):
        return f"consumer {consumer.consumer_tag} is not attached to {consumer.queue_name}"
    async with await consumer.connection.channel() as probe:
        declared = await probe.declare_queue(consumer.queue_name, passive=True)
    if (declared.declaration_result.consumer_count or 0) < 1:
        return f"the broker sees no consumer on {consumer.queue_name}"
    return None


async def watch_attachment(consumer: EventConsumer, interval_s: float = 5.0) -> None:
    """Every ``interval_s``, re-attach ``consumer`` if it was lost; runs until cancelled."""
    while not consumer.stopping:
        await asyncio.sleep(interval_s)
        try:
            await asyncio.wait_for(consumer.reattach_if_lost(), timeout=max(interval_s, 5.0))
        except (aio_pika.exceptions.AMQPError, TimeoutError, RuntimeError) as exc:
            log.warning("could not check the consumer: %s", exc)
