"""The topology on the real RabbitMQ: declared idempotently, events routed with their properties."""

from __future__ import annotations

import uuid

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection

from chassis.broker import BrokerUnavailable, connect, declare_topology, publisher_channel
from chassis.deadletter import REASON_HEADER, dead_letter
from chassis.topology import Topology, dead_letter_queue
from contracts import (
    BrokerNames,
    DaoFailed,
    DaoFailedPayload,
    JobFinished,
    encode_event,
    parse_event,
    routing_key,
)
from tests.support.broker import collect, persistent
from tests.support.outcomes import job_finished


def finished_event() -> JobFinished:
    return job_finished("failed", 3, 1, duration_ms=900, cache_invalidated=False)


async def test_an_encoded_event_arrives_on_the_ledger_queue_with_its_properties(
    amqp: AbstractRobustConnection, topology: BrokerNames
) -> None:
    channel = await publisher_channel(amqp)
    exchange = await declare_topology(channel, Topology.of(topology))
    await declare_topology(channel, Topology.of(topology))  # twice: declaring is idempotent
    event = finished_event()

    await exchange.publish(encode_event(event), routing_key(event), mandatory=True)

    [message] = await collect(await channel.get_queue(topology.ledger_queue), 1)
    assert parse_event(message.body) == event
    assert message.routing_key == "weekly-gvs-recalculation.job.finished"
    assert message.content_type == "application/json"
    assert persistent(message)
    assert message.message_id == str(event.event_id)
    assert message.type == "JobFinished"
    assert message.headers["schema_version"] == 1
    assert message.timestamp is not None


async def test_the_notifier_queue_takes_finished_jobs_but_not_dao_events(
    amqp: AbstractRobustConnection, topology: BrokerNames
) -> None:
    channel = await publisher_channel(amqp)
    exchange = await declare_topology(channel, Topology.of(topology))
    failed = DaoFailed(
        job_id=uuid.uuid4(),
        job_name="other-batch-job",
        sequence=1,
        payload=DaoFailedPayload(dao_id="x", dao_name="X", error="e", attempts=1),
    )
    finished = finished_event()
    for event in (failed, finished):
        await exchange.publish(encode_event(event), routing_key(event), mandatory=True)

    notifier_queue = await channel.get_queue(topology.notifier_queue)
    [message] = await collect(notifier_queue, 1)
    assert message.type == "JobFinished"
    assert await notifier_queue.get(fail=False) is None


async def test_the_queues_are_durable_quorum_queues_with_a_delivery_limit(
    amqp: AbstractRobustConnection, topology: BrokerNames
) -> None:
    channel = await amqp.channel()
    declared = Topology.of(topology)
    await declare_topology(channel, declared)
    ledger = declared.queue(topology.ledger_queue)
    # Declaring with different arguments fails (PRECONDITION_FAILED) only if they really differ:
    # a passive re-declare of the quorum queue with the same arguments must succeed.
    queue = await channel.declare_queue(
        topology.ledger_queue, durable=True, arguments=ledger.arguments()
    )
    assert queue.arguments == ledger.arguments()
    assert ledger.arguments()["x-queue-type"] == "quorum"
    assert ledger.arguments()["x-delivery-limit"] >= 20


async def test_an_unroutable_mandatory_publish_raises_instead_of_vanishing(
    amqp: AbstractRobustConnection, topology: BrokerNames
) -> None:
    channel = await publisher_channel(amqp)
    lonely = await channel.declare_exchange(
        topology.exchange + ".unbound", aio_pika.ExchangeType.TOPIC, auto_delete=True
    )
    with pytest.raises(aio_pika.exceptions.DeliveryError):
        await lonely.publish(aio_pika.Message(b"{}"), "x.job.finished", mandatory=True)


async def test_dead_letter_keeps_the_body_and_the_reason(
    amqp: AbstractRobustConnection, topology: BrokerNames
) -> None:
    channel = await publisher_channel(amqp)
    exchange = await declare_topology(channel, Topology.of(topology))
    await exchange.publish(aio_pika.Message(b"not json"), "weekly-gvs-recalculation.job.finished")
    [incoming] = await collect(await channel.get_queue(topology.notifier_queue), 1)
    # collect() acked it already; dead-letter a fresh copy to check the headers.
    await exchange.publish(
        aio_pika.Message(incoming.body, message_id="m-1"), "weekly-gvs-recalculation.job.finished"
    )
    queue = await channel.get_queue(topology.notifier_queue)
    message = await queue.get(timeout=5)
    await dead_letter(channel, message, dead_letter_queue(topology.notifier_queue), "invalid JSON")

    [dead] = await collect(await channel.get_queue(dead_letter_queue(topology.notifier_queue)), 1)
    assert dead.body == b"not json"
    assert dead.headers[REASON_HEADER] == "invalid JSON"
    assert dead.headers["x-original-routing-key"] == "weekly-gvs-recalculation.job.finished"
    assert dead.message_id == "m-1"
    assert await queue.get(fail=False) is None


async def test_connecting_to_a_dead_port_says_where_without_the_password() -> None:
    with pytest.raises(BrokerUnavailable) as info:
        await connect("amqp://guest:s3cret@127.0.0.1:1/", timeout_s=2)
    assert "127.0.0.1:1" in str(info.value)
    assert "s3cret" not in str(info.value)
