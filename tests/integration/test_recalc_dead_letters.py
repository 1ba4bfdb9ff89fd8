"""``recalculator dead-letters``: the commands queue's dead letters listed with their reasons,
and a replayed command back in the commands queue, where the worker takes it."""

from __future__ import annotations

import sys
from pathlib import Path

import aio_pika
from aio_pika.abc import AbstractRobustConnection

from chassis.broker import declare_topology
from chassis.topology import Topology, dead_letter_queue
from contracts import BrokerNames, RunAccepted, RunRequested, parse_event
from recalculator.trigger import publish_run_request
from tests.harness.processes import run_command
from tests.harness.stack import Stack
from tests.support.broker import collect, eventually, tap_exchange
from tests.support.recalc import hub_spaces, running_worker, seed_daos
from tests.support.snapshot_hub import SnapshotHub

REPO = Path(__file__).resolve().parents[2]


async def recalculator(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    return await run_command([sys.executable, "-m", "recalculator", *args], env, cwd=REPO)


async def dead_count(amqp: AbstractRobustConnection, topology: BrokerNames) -> int:
    """Messages waiting in the commands queue's dead-letter queue."""
    channel = await amqp.channel()
    try:
        dead = await channel.declare_queue(dead_letter_queue(topology.commands_queue), passive=True)
        return int(dead.declaration_result.message_count or 0)
    finally:
        await channel.close()


async def reject_one_command(amqp: AbstractRobustConnection, topology: BrokerNames) -> None:
    """Take the command waiting in the commands queue and reject it: the broker dead-letters it.
    (Consumed, not fetched: a single-active-consumer quorum queue refuses ``basic.get``.)"""
    channel = await amqp.channel()
    try:
        queue = await channel.get_queue(topology.commands_queue)
        async with queue.iterator() as deliveries:
            async for message in deliveries:
                await message.reject(requeue=False)
                break
    finally:
        await channel.close()


async def test_dead_commands_are_listed_with_their_reason_and_a_replayed_one_reaches_the_worker(
    stack: Stack,
) -> None:
    env = stack.recalc_env()
    settings = stack.recalc_settings()
    async with await stack.amqp.channel() as channel:
        await declare_topology(channel, Topology.of(stack.topology))
    command = RunRequested(job_name=settings.job_name, trigger="retry")
    await publish_run_request(stack.amqp, stack.topology, command)
    await reject_one_command(stack.amqp, stack.topology)
    await eventually(lambda: dead_count(stack.amqp, stack.topology), lambda n: n == 1)

    await seed_daos(settings, 2)
    async with SnapshotHub(hub_spaces(2)) as hub:
        worker_settings = settings.model_copy(update={"snapshot_hub_url": hub.url})
        async with running_worker(worker_settings):
            async with await stack.amqp.channel() as channel:
                await channel.default_exchange.publish(
                    aio_pika.Message(b'{"schema_version": 1, "trigger": "whenever"}'),
                    routing_key=stack.topology.commands_queue,
                )
            await eventually(lambda: dead_count(stack.amqp, stack.topology), lambda n: n == 2)

            code, out, err = await recalculator(env, "dead-letters", "list")
            assert code == 0, err
            header, *rows = out.splitlines()
            assert header.split("\t") == [
                "message_id",
                "routing_key",
                "dead_lettered_at",
                "reason",
                "body",
            ]
            [rejected] = [r.split("\t") for r in rows if r.startswith(str(command.request_id))]
            [malformed] = [r.split("\t") for r in rows if not r.startswith(str(command.request_id))]
            assert rejected[1] == stack.topology.commands_queue
            assert rejected[3].startswith("broker: rejected after 1 times")
            assert malformed[3].startswith("invalid command: invalid RunRequested: trigger:")
            dead = dead_letter_queue(stack.topology.commands_queue)
            assert err.strip().splitlines()[-1] == f"2 dead letter(s) in {dead}"

            answers = await tap_exchange(stack.amqp, stack.topology, "#.run.accepted")
            code, _, err = await recalculator(
                env, "dead-letters", "replay", "--id", str(command.request_id)
            )
            assert code == 0, err
            assert err.strip().splitlines()[-1] == f"1 replayed from {dead}"

            [answer] = [parse_event(m.body) for m in await collect(answers, 1, timeout_s=30)]
            assert isinstance(answer, RunAccepted)
            assert answer.payload.request_id == command.request_id
            assert answer.payload.trigger == "retry"
            assert await dead_count(stack.amqp, stack.topology) == 1, "the malformed one stays"
