"""``AMQP_URL`` as a list on the real broker: a dead first address is passed over, a bad list
stops each service's command line with one line and exit 2, and the queues' arguments stay
those of the queues brokers already hold (a redeclare with other arguments is refused)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection

from chassis.broker import BrokerUnavailable, connect, declare_topology
from chassis.topology import Topology
from contracts import BrokerNames
from tests.harness.ports import ReservedPort
from tests.harness.processes import run_command

REPO = Path(__file__).resolve().parents[2]


async def test_a_list_whose_first_address_is_dead_connects_to_the_second(amqp_url: str) -> None:
    with ReservedPort() as nothing_listens:
        dead = f"amqp://guest:s3cret@127.0.0.1:{nothing_listens.port}/"
        connection = await connect(f"{dead}, {amqp_url}", timeout_s=5, name="list-test")
    try:
        assert str(connection.url) == amqp_url
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True)
        await channel.default_exchange.publish(aio_pika.Message(b"through"), queue.name)
        message = await queue.get(timeout=5)
        assert message.body == b"through"
    finally:
        await connection.close()


async def test_a_list_of_dead_addresses_names_each_without_its_password() -> None:
    with ReservedPort() as one, ReservedPort() as two:
        urls = [f"amqp://guest:s3cret@127.0.0.1:{p.port}/" for p in (one, two)]
        with pytest.raises(BrokerUnavailable) as info:
            await connect(",".join(urls), timeout_s=2)
    message = str(info.value)
    assert message.startswith("cannot connect to RabbitMQ at ")
    assert f"127.0.0.1:{one.port}" in message and f"127.0.0.1:{two.port}" in message
    assert "s3cret" not in message


@pytest.mark.parametrize(
    ("module", "bad_list"),
    [
        ("notifier", "amqp://a,://bad"),
        ("notifier", ""),
        ("notifier", "amqp://guest:s3cret@127.0.0.1/,"),
        ("job_ledger", "amqp://guest:s3cret@127.0.0.1/,http://guest:s3cret@127.0.0.1/"),
        ("recalculator", "amqp://guest:s3cret@127.0.0.1:notaport/"),
    ],
)
async def test_a_bad_list_stops_a_service_command_with_one_line_and_exit_2(
    module: str, bad_list: str
) -> None:
    env = {**os.environ, "AMQP_URL": bad_list, "LOG_FORMAT": "text"}
    code, _, err = await run_command([sys.executable, "-m", module, "migrate"], env, cwd=REPO)
    assert code == 2, err
    [line] = err.strip().splitlines()
    assert "AMQP_URL" in line
    assert "s3cret" not in err


HELD_QUEUE_ARGUMENTS: dict[str, Any] = {
    "x-queue-type": "quorum",
    "x-delivery-limit": 50,
    "x-dead-letter-exchange": "",
}
"""The arguments of the queues brokers already hold (and the dead-letter routing key), written
out: a queue refuses a redeclare with any other (``PRECONDITION_FAILED``), so the services'
declare must keep to them."""
HELD_DEAD_ARGUMENTS: dict[str, Any] = {"x-queue-type": "quorum"}


async def test_the_topology_redeclares_queues_made_with_the_arguments_brokers_hold(
    amqp: AbstractRobustConnection, topology: BrokerNames
) -> None:
    spec = Topology.of(topology).queue(topology.notifier_queue)
    channel = await amqp.channel()
    queue_args = {**HELD_QUEUE_ARGUMENTS, "x-dead-letter-routing-key": spec.dead_letter_queue}
    await channel.declare_queue(spec.dead_letter_queue, durable=True, arguments=HELD_DEAD_ARGUMENTS)
    await channel.declare_queue(spec.name, durable=True, arguments=queue_args)

    await declare_topology(channel, Topology.of(topology))

    unchanged = await channel.declare_queue(spec.name, durable=True, arguments=queue_args)
    assert unchanged.declaration_result.message_count == 0
