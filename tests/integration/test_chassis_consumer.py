"""The chassis consumers on the real RabbitMQ: parse at the edge, dead-letter with the reason,
requeue a transient failure, ack only once the handler returned, batches with refusals.

Each test has a queue and a dead-letter queue of its own, published to by name.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import aio_pika
import asyncpg
import pytest
from aio_pika.abc import AbstractChannel, AbstractRobustConnection

from chassis.batch_consumer import BatchConsumer
from chassis.broker import declare_queue
from chassis.consumer import DeliveryConsumer, MessageConsumer, QueueConsumer, Rejected
from chassis.deadletter import REASON_HEADER
from chassis.delivery import Delivery
from chassis.topology import QueueSpec
from tests.support.broker import collect, eventually


def parse_number(body: bytes) -> int:
    """The contract of these tests: a body is a decimal number."""
    try:
        return int(body)
    except ValueError:
        raise Rejected(f"not a number: {body!r}", cause="invalid") from None


@pytest.fixture
async def spec(amqp_url: str, unique: str) -> AsyncIterator[QueueSpec]:
    """This test's queue (and its dead-letter queue), deleted afterwards."""
    queue = QueueSpec(f"test.{unique}.events", ())
    connection = await aio_pika.connect_robust(amqp_url)
    async with connection:
        channel = await connection.channel()
        await declare_queue(channel, queue, None)
        yield queue
        for name in (queue.name, queue.dead_letter_queue):
            await channel.queue_delete(name)


@pytest.fixture
async def publisher(amqp: AbstractRobustConnection) -> AbstractChannel:
    return await amqp.channel(publisher_confirms=True)


async def publish(channel: AbstractChannel, spec: QueueSpec, *bodies: bytes) -> None:
    for body in bodies:
        message = aio_pika.Message(body, message_id=body.decode(errors="replace"))
        await channel.default_exchange.publish(message, spec.name, mandatory=True)


@contextlib.asynccontextmanager
async def consuming(consumer: QueueConsumer, stop_timeout_s: float = 5.0) -> AsyncIterator[None]:
    """Start ``consumer`` and run it for the block; stop it (draining) afterwards."""
    await consumer.start()
    task = asyncio.create_task(consumer.run())
    try:
        yield
    finally:
        await consumer.stop(stop_timeout_s)
        await asyncio.wait_for(task, 5)


async def queue_depth(amqp: AbstractRobustConnection, name: str) -> tuple[int, int]:
    """(ready messages, consumers) the broker counts on ``name``."""
    async with await amqp.channel() as channel:
        declared = await channel.declare_queue(name, passive=True)
    result = declared.declaration_result
    return result.message_count or 0, result.consumer_count or 0


class Recorder:
    """A handler that records each model, first raising the scripted errors in turn."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.seen: list[int] = []

    async def __call__(self, number: int) -> None:
        self.seen.append(number)
        if self.errors:
            raise self.errors.pop(0)


def message_consumer(
    amqp: AbstractRobustConnection,
    spec: QueueSpec,
    handler: Callable[[int], Awaitable[object]],
    **options: Any,
) -> MessageConsumer[int]:
    return MessageConsumer(amqp, spec, parse_number, handler, requeue_pause_s=0.05, **options)


async def test_a_body_that_does_not_parse_is_dead_lettered_with_the_reason_and_consuming_goes_on(
    amqp: AbstractRobustConnection, spec: QueueSpec, publisher: AbstractChannel
) -> None:
    handler = Recorder()
    causes: list[str] = []
    consumer = message_consumer(
        amqp, spec, handler, on_dead_letter=lambda r: causes.append(r.cause)
    )
    async with consuming(consumer):
        await publish(publisher, spec, b"{garbage", b"7")
        [dead] = await collect(await publisher.get_queue(spec.dead_letter_queue), 1)
        await eventually(lambda: asyncio.sleep(0, handler.seen), lambda seen: seen == [7])

    assert dead.body == b"{garbage"
    assert dead.headers[REASON_HEADER] == "not a number: b'{garbage'"
    assert causes == ["invalid"]
    assert await queue_depth(amqp, spec.name) == (0, 0)


async def test_a_transient_error_requeues_the_message_which_is_then_handled(
    amqp: AbstractRobustConnection, spec: QueueSpec, publisher: AbstractChannel
) -> None:
    handler = Recorder(asyncpg.exceptions.DeadlockDetectedError("deadlock detected"))
    requeued: list[str] = []
    consumer = message_consumer(amqp, spec, handler, on_requeue=lambda: requeued.append("once"))
    async with consuming(consumer):
        await publish(publisher, spec, b"41")
        await eventually(lambda: asyncio.sleep(0, handler.seen), lambda seen: seen == [41, 41])
        await eventually(lambda: asyncio.sleep(0, consumer.progress.handled), lambda n: n == 2)

    assert requeued == ["once"]
    assert await queue_depth(amqp, spec.name) == (0, 0)
    assert (await queue_depth(amqp, spec.dead_letter_queue))[0] == 0


async def test_a_permanent_refusal_is_dead_lettered_and_not_handled_again(
    amqp: AbstractRobustConnection, spec: QueueSpec, publisher: AbstractChannel
) -> None:
    handler = Recorder(Rejected("job 3 belongs to another ledger"))
    consumer = message_consumer(amqp, spec, handler)
    async with consuming(consumer):
        await publish(publisher, spec, b"3")
        [dead] = await collect(await publisher.get_queue(spec.dead_letter_queue), 1)
        await eventually(lambda: asyncio.sleep(0, consumer.progress.handled), lambda n: n == 1)

    assert (dead.body, dead.headers[REASON_HEADER]) == (b"3", "job 3 belongs to another ledger")
    assert handler.seen == [3]
    assert await queue_depth(amqp, spec.name) == (0, 0)


async def test_a_message_is_acked_only_after_its_handler_returned_so_a_crash_loses_nothing(
    amqp_url: str, amqp: AbstractRobustConnection, spec: QueueSpec, publisher: AbstractChannel
) -> None:
    started = asyncio.Event()

    async def hangs(number: int) -> None:
        started.set()
        await asyncio.Event().wait()

    doomed = await aio_pika.connect_robust(amqp_url)
    first = message_consumer(doomed, spec, hangs)
    await first.start()
    run = asyncio.create_task(first.run())
    await publish(publisher, spec, b"5")
    await asyncio.wait_for(started.wait(), 10)
    # The process dies mid-handling: its connection goes, nothing is stopped gracefully.
    await doomed.close()
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)

    handler = Recorder()
    async with consuming(message_consumer(amqp, spec, handler)):
        await eventually(lambda: asyncio.sleep(0, handler.seen), lambda seen: seen == [5])
    assert await queue_depth(amqp, spec.name) == (0, 0)


async def test_an_unexpected_error_requeues_the_message_instead_of_losing_it(
    amqp: AbstractRobustConnection, spec: QueueSpec, publisher: AbstractChannel
) -> None:
    handler = Recorder(KeyError("a bug"), KeyError("a bug"))
    async with consuming(message_consumer(amqp, spec, handler)):
        await publish(publisher, spec, b"9")
        await eventually(lambda: asyncio.sleep(0, handler.seen), lambda seen: seen == [9, 9, 9])
    assert await queue_depth(amqp, spec.name) == (0, 0)


async def test_stopping_lets_the_message_in_hand_finish_and_acks_it(
    amqp: AbstractRobustConnection, spec: QueueSpec, publisher: AbstractChannel
) -> None:
    started, finished = asyncio.Event(), []

    async def slow(number: int) -> None:
        started.set()
        await asyncio.sleep(0.3)
        finished.append(number)

    async with consuming(message_consumer(amqp, spec, slow)):
        await publish(publisher, spec, b"8")
        await asyncio.wait_for(started.wait(), 10)

    assert finished == [8]
    assert await queue_depth(amqp, spec.name) == (0, 0)


class BatchRecorder:
    """A batch handler: refuses multiples of ``refuse``; the whole batch when it holds 13."""

    def __init__(self, *errors: BaseException, refuse: int = 1000) -> None:
        self.errors = list(errors)
        self.refuse = refuse
        self.batches: list[list[int]] = []

    async def __call__(self, numbers: Sequence[int]) -> Mapping[int, Rejected]:
        self.batches.append(list(numbers))
        if self.errors:
            raise self.errors.pop(0)
        if 13 in numbers:
            raise Rejected("13 is unlucky")
        return {
            i: Rejected(f"{n} is refused", cause="conflict")
            for i, n in enumerate(numbers)
            if n % self.refuse == 0
        }


async def test_a_batch_dead_letters_garbage_and_refusals_and_acks_the_rest(
    amqp: AbstractRobustConnection, spec: QueueSpec, publisher: AbstractChannel
) -> None:
    handler = BatchRecorder(refuse=5)
    causes: list[str] = []
    consumer = BatchConsumer(
        amqp,
        spec,
        parse_number,
        handler,
        batch_size=10,
        batch_wait_s=0.5,
        on_dead_letter=lambda r: causes.append(r.cause),
    )
    await publish(publisher, spec, b"1", b"x", b"5", b"2", b"10", b"3")
    async with consuming(consumer):
        dead = await collect(await publisher.get_queue(spec.dead_letter_queue), 3)
        await eventually(lambda: asyncio.sleep(0, consumer.progress.handled), lambda n: n == 6)

    assert handler.batches == [[1, 5, 2, 10, 3]]
    assert {m.body: m.headers[REASON_HEADER] for m in dead} == {
        b"x": "not a number: b'x'",
        b"5": "5 is refused",
        b"10": "10 is refused",
    }
    assert sorted(causes) == ["conflict", "conflict", "invalid"]
    assert await queue_depth(amqp, spec.name) == (0, 0)


async def test_a_refused_batch_is_handed_one_message_at_a_time(
    amqp: AbstractRobustConnection, spec: QueueSpec, publisher: AbstractChannel
) -> None:
    handler = BatchRecorder()
    consumer = BatchConsumer(amqp, spec, parse_number, handler, batch_size=10, batch_wait_s=0.5)
    await publish(publisher, spec, b"1", b"13", b"2")
    async with consuming(consumer):
        [dead] = await collect(await publisher.get_queue(spec.dead_letter_queue), 1)
        await eventually(lambda: asyncio.sleep(0, consumer.progress.handled), lambda n: n == 3)

    assert handler.batches == [[1, 13, 2], [1], [13], [2]]
    assert (dead.body, dead.headers[REASON_HEADER]) == (b"13", "13 is unlucky")
    assert await queue_depth(amqp, spec.name) == (0, 0)


async def test_a_batch_is_retried_in_place_through_a_transient_error(
    amqp: AbstractRobustConnection, spec: QueueSpec, publisher: AbstractChannel
) -> None:
    handler = BatchRecorder(ConnectionResetError("reset"), asyncpg.exceptions.SerializationError())
    retries: list[str] = []
    consumer = BatchConsumer(
        amqp,
        spec,
        parse_number,
        handler,
        batch_size=10,
        batch_wait_s=0.5,
        on_retry=lambda e: retries.append(type(e).__name__),
    )
    await publish(publisher, spec, b"1", b"2")
    async with consuming(consumer):
        await eventually(lambda: asyncio.sleep(0, consumer.progress.handled), lambda n: n == 2)

    assert handler.batches == [[1, 2]] * 3
    assert retries == ["ConnectionResetError", "SerializationError"]
    assert await queue_depth(amqp, spec.name) == (0, 0)


async def test_a_handler_that_acked_early_and_then_failed_does_not_get_the_message_again(
    amqp: AbstractRobustConnection, spec: QueueSpec, publisher: AbstractChannel
) -> None:
    seen: list[int] = []

    async def acks_then_fails(number: int, delivery: Delivery) -> None:
        seen.append(number)
        await delivery.ack()
        raise KeyError("a bug after the commit")

    consumer = DeliveryConsumer(amqp, spec, parse_number, acks_then_fails, requeue_pause_s=0.05)
    async with consuming(consumer):
        await publish(publisher, spec, b"5", b"6")
        await eventually(lambda: asyncio.sleep(0, consumer.progress.handled), lambda n: n == 2)
        await asyncio.sleep(0.3)  # a requeued message would be back by now
    assert seen == [5, 6]
    assert (await queue_depth(amqp, spec.name))[0] == 0


async def test_a_handler_cancelled_at_stop_after_its_early_ack_leaves_nothing_in_the_queue(
    amqp: AbstractRobustConnection, spec: QueueSpec, publisher: AbstractChannel
) -> None:
    acked = asyncio.Event()

    async def acks_then_hangs(number: int, delivery: Delivery) -> None:
        await delivery.ack()
        acked.set()
        await asyncio.Event().wait()

    consumer = DeliveryConsumer(amqp, spec, parse_number, acks_then_hangs, concurrency=1)
    async with consuming(consumer, stop_timeout_s=0.2):
        await publish(publisher, spec, b"7")
        await asyncio.wait_for(acked.wait(), 10)
    assert (await queue_depth(amqp, spec.name))[0] == 0
