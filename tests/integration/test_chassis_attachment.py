"""``chassis.attachment`` on the real RabbitMQ: consuming, losing the consumer, re-attaching.

The consumer is lost the way a broker restart has been seen to leave it (aio-pika #231, #334):
its channel still open, the consumer gone, here by a real ``basic.cancel`` on the broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from chassis.attachment import Attachment, broker_consumer_count, watch_attachment
from chassis.topology import QueueSpec
from contracts.topology import BrokerNames
from tests.support.broker import eventually


class Received:
    """The ``on_message`` of the tests: acks and keeps each body."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, message: AbstractIncomingMessage) -> None:
        await message.ack()
        self.bodies.append(message.body)

    async def so_far(self) -> list[bytes]:
        return list(self.bodies)


@pytest.fixture
def spec(topology: BrokerNames) -> QueueSpec:
    # The test topology's notifier queue, so the fixture deletes it afterwards; not bound.
    return QueueSpec(topology.notifier_queue, ())


@pytest.fixture
async def attachment(
    amqp: AbstractRobustConnection, spec: QueueSpec
) -> AsyncIterator[tuple[Attachment, Received]]:
    received = Received()
    attachment = Attachment(amqp, spec, prefetch=5, on_message=received)
    yield attachment, received
    await attachment.detach()


async def send(amqp: AbstractRobustConnection, queue: str, *bodies: bytes) -> None:
    async with await amqp.channel() as channel:
        for body in bodies:
            await channel.default_exchange.publish(aio_pika.Message(body), routing_key=queue)


async def lose(attachment: Attachment) -> str:
    """Cancel the attachment's consumer on the broker, its channel left open; return the tag."""
    tag, channel = attachment.consumer_tag, attachment.channel
    assert tag is not None and channel is not None
    await (await channel.get_underlay_channel()).basic_cancel(tag)
    return tag


async def test_an_attached_consumer_receives_what_is_published_and_is_ready(
    amqp: AbstractRobustConnection, spec: QueueSpec, attachment: tuple[Attachment, Received]
) -> None:
    consumer, received = attachment
    assert await consumer.problem() == "consumer not started"

    await consumer.attach()
    await send(amqp, spec.name, b"one", b"two", b"three")

    await eventually(received.so_far, lambda b: len(b) == 3)
    assert received.bodies == [b"one", b"two", b"three"]
    assert await consumer.problem() is None
    assert await broker_consumer_count(amqp, spec.name) == 1


async def test_a_lost_consumer_is_reported_and_attached_again_on_a_fresh_channel(
    amqp: AbstractRobustConnection, spec: QueueSpec, attachment: tuple[Attachment, Received]
) -> None:
    consumer, received = attachment
    await consumer.attach()
    old_channel = consumer.channel
    assert old_channel is not None

    lost = await lose(consumer)

    assert await consumer.problem() == f"consumer {lost} is not attached to {spec.name}"
    assert await broker_consumer_count(amqp, spec.name) == 0
    assert await consumer.reattach_if_lost() is True
    assert consumer.consumer_tag != lost
    assert consumer.channel is not old_channel and old_channel.is_closed
    assert await consumer.problem() is None
    assert await broker_consumer_count(amqp, spec.name) == 1
    assert await consumer.reattach_if_lost() is False, "nothing was lost the second time"
    await send(amqp, spec.name, b"after")
    await eventually(received.so_far, lambda b: b == [b"after"])


async def test_the_watch_attaches_a_lost_consumer_again_by_itself_and_ends_with_detach(
    amqp: AbstractRobustConnection, spec: QueueSpec, attachment: tuple[Attachment, Received]
) -> None:
    consumer, received = attachment
    await consumer.attach()
    watch = asyncio.create_task(watch_attachment(consumer, interval_s=0.1))
    try:
        lost = await lose(consumer)
        await eventually(consumer.problem, lambda problem: problem is None, timeout_s=10)
        assert consumer.consumer_tag != lost
        await send(amqp, spec.name, b"after")
        await eventually(received.so_far, lambda b: b == [b"after"])

        await consumer.detach()
        await asyncio.wait_for(watch, timeout=5)
    finally:
        watch.cancel()


async def test_a_detached_consumer_is_stopping_and_never_attached_again(
    amqp: AbstractRobustConnection, spec: QueueSpec, attachment: tuple[Attachment, Received]
) -> None:
    consumer, received = attachment
    await consumer.attach()

    await consumer.detach()
    await consumer.detach()  # idempotent

    assert await consumer.problem() == "stopping"
    assert await consumer.reattach_if_lost() is False
    await consumer.attach()
    assert await broker_consumer_count(amqp, spec.name) == 0
    await send(amqp, spec.name, b"unread")
    await asyncio.sleep(0.3)  # a delivery, were there a consumer, takes milliseconds
    assert received.bodies == []
    async with await amqp.channel() as channel:
        waiting = await channel.declare_queue(spec.name, passive=True)
    assert waiting.declaration_result.message_count == 1


async def test_the_broker_count_of_a_queue_that_does_not_exist_raises(
    amqp: AbstractRobustConnection, spec: QueueSpec
) -> None:
    with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
        await broker_consumer_count(amqp, spec.name + ".missing")
