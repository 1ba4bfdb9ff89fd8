"""The cluster harness against real nodes: they start and join, a quorum queue replicates to
every node and keeps every confirmed message through the SIGKILL of its leader, a node can be
cut off from its clients, and teardown leaves neither nodes nor files, nor a scratch on the
default broker."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from pathlib import Path

import aio_pika
import pytest

from tests.cluster.harness import RabbitCluster, process_alive, running_cluster
from tests.support.services import LOCAL_AMQP_URL

MESSAGES = 1_000


def default_broker() -> tuple[int, list[str]]:
    """The machine's default broker as its own service scripts see it: its VM's OS pid and
    the nodes its cluster runs."""

    def ctl(command: str) -> dict[str, object]:
        argv = ["/usr/sbin/rabbitmqctl", command, "--formatter", "json"]
        return dict(json.loads(subprocess.run(argv, capture_output=True, check=True).stdout))

    running = ctl("cluster_status")["running_nodes"]
    assert isinstance(running, list)
    return int(str(ctl("status")["pid"])), sorted(running)


async def assert_default_broker_serves() -> None:
    """A message goes through the default broker on its usual port and comes back."""
    async with await aio_pika.connect(LOCAL_AMQP_URL) as amqp:
        channel = await amqp.channel()
        queue = await channel.declare_queue(exclusive=True)
        await channel.default_exchange.publish(aio_pika.Message(b"still here"), queue.name)
        message = await queue.get(timeout=10)
        assert message is not None and message.body == b"still here"


async def declare_quorum_queue(url: str, name: str) -> None:
    async with await aio_pika.connect(url) as amqp:
        channel = await amqp.channel()
        await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})


async def publish_confirmed(url: str, queue: str, count: int) -> None:
    """Publish ``count`` persistent messages, each confirmed by the broker before returning."""
    async with await aio_pika.connect(url) as amqp:
        channel = await amqp.channel(publisher_confirms=True)
        for start in range(0, count, 100):
            await asyncio.gather(
                *(
                    channel.default_exchange.publish(
                        aio_pika.Message(
                            str(i).encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT
                        ),
                        queue,
                    )
                    for i in range(start, min(start + 100, count))
                )
            )


async def drain(url: str, queue: str, timeout_s: float = 60) -> list[bytes]:
    """Every message on ``queue`` (acked), read until it is empty or ``timeout_s`` passes."""
    bodies: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    async with await aio_pika.connect(url) as amqp:
        channel = await amqp.channel()
        await channel.set_qos(prefetch_count=200)
        declared = await channel.declare_queue(queue, passive=True)
        while time.monotonic() < deadline:
            message = await declared.get(fail=False, timeout=10)
            if message is None:
                break
            bodies.append(message.body)
            await message.ack()
    return bodies


async def test_three_nodes_start_and_join_one_cluster(rabbit_cluster: RabbitCluster) -> None:
    assert rabbit_cluster.running_nodes() == sorted(rabbit_cluster.names)
    assert len(set(rabbit_cluster.names)) == 3
    for url in (*rabbit_cluster.amqp_urls, *rabbit_cluster.proxied_urls):
        async with await aio_pika.connect(url) as amqp:
            assert not amqp.is_closed
    print(f"cluster timings: {rabbit_cluster.timings}")


async def test_a_quorum_queue_gets_a_member_on_every_node(rabbit_cluster: RabbitCluster) -> None:
    queue = f"test.{uuid.uuid4().hex[:10]}.quorum"
    await declare_quorum_queue(rabbit_cluster.amqp_urls[0], queue)
    replicas = rabbit_cluster.replicas(queue)
    assert sorted(replicas.members) == sorted(rabbit_cluster.names)
    assert sorted(replicas.online) == sorted(rabbit_cluster.names)
    assert rabbit_cluster.leader_of(queue) in rabbit_cluster.names


async def test_every_confirmed_message_survives_the_sigkill_of_the_leader(
    rabbit_cluster: RabbitCluster,
) -> None:
    default_before = default_broker()
    queue = f"test.{uuid.uuid4().hex[:10]}.quorum"
    await declare_quorum_queue(rabbit_cluster.amqp_urls[0], queue)
    leader = rabbit_cluster.leader_of(queue)
    survivor = next(name for name in rabbit_cluster.names if name != leader)
    await publish_confirmed(rabbit_cluster.url(survivor), queue, MESSAGES)

    pid = rabbit_cluster.vm_pid(leader)
    rabbit_cluster.kill(leader)
    assert not process_alive(pid)
    new_leader = await asyncio.to_thread(rabbit_cluster.leader_of, queue)
    assert new_leader != leader

    bodies = await drain(rabbit_cluster.url(survivor), queue)
    assert sorted(bodies) == sorted(str(i).encode() for i in range(MESSAGES))

    began = time.monotonic()
    await asyncio.to_thread(rabbit_cluster.start_node, leader)
    print(f"restart of a killed node: {time.monotonic() - began:.1f}s")
    assert rabbit_cluster.running_nodes() == sorted(rabbit_cluster.names)
    assert default_broker() == default_before
    await assert_default_broker_serves()


async def test_a_stopped_node_hands_its_leadership_over_and_rejoins_on_start(
    rabbit_cluster: RabbitCluster,
) -> None:
    queue = f"test.{uuid.uuid4().hex[:10]}.quorum"
    await declare_quorum_queue(rabbit_cluster.amqp_urls[0], queue)
    leader = rabbit_cluster.leader_of(queue)
    pid = rabbit_cluster.vm_pid(leader)

    await asyncio.to_thread(rabbit_cluster.stop, leader)
    assert not process_alive(pid)
    assert leader not in rabbit_cluster.running_nodes()
    assert await asyncio.to_thread(rabbit_cluster.leader_of, queue) != leader

    await asyncio.to_thread(rabbit_cluster.start_node, leader)
    assert rabbit_cluster.running_nodes() == sorted(rabbit_cluster.names)
    assert rabbit_cluster.vm_pid(leader) != pid


async def test_a_cut_off_node_drops_and_refuses_its_clients_until_restored(
    rabbit_cluster: RabbitCluster,
) -> None:
    name = rabbit_cluster.names[1]
    amqp = await aio_pika.connect(rabbit_cluster.url(name, proxied=True))
    closed = asyncio.Event()
    amqp.close_callbacks.add(lambda *_: closed.set())

    rabbit_cluster.cut_off(name)
    await asyncio.wait_for(closed.wait(), 10)
    with pytest.raises(aio_pika.exceptions.AMQPConnectionError):
        await aio_pika.connect(rabbit_cluster.url(name, proxied=True), timeout=5)
    assert rabbit_cluster.running_nodes() == sorted(rabbit_cluster.names)

    rabbit_cluster.restore(name)
    async with await aio_pika.connect(rabbit_cluster.url(name, proxied=True)) as again:
        assert not again.is_closed


async def test_teardown_kills_every_node_and_removes_its_files_even_when_the_body_fails() -> None:
    default_before = default_broker()
    pids: list[int] = []
    roots: list[Path] = []
    with pytest.raises(RuntimeError, match="the test failed"), running_cluster(size=1) as cluster:
        pids.append(cluster.vm_pid(cluster.names[0]))
        roots.append(cluster.root)
        raise RuntimeError("the test failed")
    assert pids and not process_alive(pids[0])
    assert roots and not roots[0].exists()
    assert default_broker() == default_before
    await assert_default_broker_serves()
