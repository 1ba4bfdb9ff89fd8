"""The worker in-process: a RunRequested end to end (a DAO subset), a redelivered command,
an invalid one dead-lettered with its reason, health and metrics over HTTP, a clean stop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aio_pika
import aiohttp
import asyncpg
import pytest

from chassis.broker import declare_topology
from chassis.deadletter import REASON_HEADER
from chassis.topology import Topology, dead_letter_queue
from contracts import (
    DaoProcessed,
    JobFinished,
    JobStarted,
    RunAccepted,
    RunRequested,
    parse_event,
)
from recalculator.config import Settings
from recalculator.trigger import publish_run_request
from recalculator.worker import Worker
from tests.harness.stack import Stack
from tests.support.broker import collect, drain, eventually, tap_queue
from tests.support.recalc import hub_spaces, seed_daos
from tests.support.recalc import running_worker as worker_in_process
from tests.support.snapshot_hub import SnapshotHub


@pytest.fixture
async def running_worker(stack: Stack) -> AsyncIterator[tuple[Worker, Settings]]:
    base = stack.recalc_settings()
    await seed_daos(base, 6)
    async with SnapshotHub(hub_spaces(6)) as hub:
        settings = base.model_copy(update={"snapshot_hub_url": hub.url})
        async with worker_in_process(settings) as worker:
            yield worker, settings


async def test_the_worker_runs_a_requested_subset_once_even_when_the_command_comes_twice(
    stack: Stack,
    running_worker: tuple[Worker, Settings],
) -> None:
    worker, settings = running_worker
    channel = await stack.amqp.channel()
    await declare_topology(channel, Topology.of(stack.topology))
    tap = await tap_queue(channel, stack.topology.exchange)

    command = RunRequested(
        job_name=settings.job_name, trigger="retry", dao_ids=["dao-01", "dao-04"]
    )
    await publish_run_request(stack.amqp, stack.topology, command)
    accepted, *events = [parse_event(m.body) for m in await collect(tap, 5, timeout_s=30)]

    assert isinstance(accepted, RunAccepted)
    assert accepted.job_id == events[0].job_id
    assert accepted.payload.model_dump() == {
        "request_id": command.request_id,
        "trigger": "retry",
        "scope": "subset",
        "daos_requested": 2,
    }
    assert isinstance(events[0], JobStarted)
    assert events[0].payload.model_dump() == {
        "daos_total": 2,
        "trigger": "retry",
        "scope": "subset",
    }
    assert sorted(e.payload.dao_id for e in events if isinstance(e, DaoProcessed)) == [
        "dao-01",
        "dao-04",
    ]
    assert isinstance(events[-1], JobFinished)
    assert (events[-1].payload.status, events[-1].payload.scope) == ("completed", "subset")
    assert [e.sequence for e in events] == [0, 1, 2, 3]

    await publish_run_request(
        stack.amqp, stack.topology, command
    )  # a redelivery, as far as we can tell
    assert worker.consumer is not None
    consumer = worker.consumer
    await eventually(lambda: asyncio.sleep(0, consumer.progress.handled), lambda n: n == 2)
    assert await drain(tap, 0.5) == [], "the second delivery started nothing, answered nothing"
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        jobs = await conn.fetch(
            f'SELECT request_id, trigger, dao_ids, status FROM "{settings.recalc_schema}".jobs'
        )
    finally:
        await conn.close()
    assert [dict(j) for j in jobs] == [
        {
            "request_id": command.request_id,
            "trigger": "retry",
            "dao_ids": ["dao-01", "dao-04"],
            "status": "completed",
        }
    ]
    queue = await channel.get_queue(stack.topology.commands_queue)
    assert queue.declaration_result.message_count == 0, "both deliveries were acked"


async def test_an_invalid_command_is_dead_lettered_with_the_reason_and_the_worker_goes_on(
    stack: Stack,
    running_worker: tuple[Worker, Settings],
) -> None:
    _, settings = running_worker
    channel = await stack.amqp.channel()
    await channel.default_exchange.publish(
        aio_pika.Message(b'{"schema_version": 1, "trigger": "whenever"}'),
        routing_key=stack.topology.commands_queue,
    )
    dead = await channel.get_queue(dead_letter_queue(stack.topology.commands_queue))
    [message] = await collect(dead, 1, timeout_s=15)
    reason = str((message.headers or {})[REASON_HEADER])
    assert reason.startswith("invalid command: invalid RunRequested: trigger:")

    tap = await tap_queue(channel, stack.topology.exchange)
    await publish_run_request(stack.amqp, stack.topology, RunRequested(job_name=settings.job_name))
    events = [parse_event(m.body) for m in await collect(tap, 9, timeout_s=30)]
    assert isinstance(events[-1], JobFinished)
    assert events[-1].payload.daos_processed == 6
    assert isinstance(events[1], JobStarted)
    assert (events[1].payload.scope, events[-1].payload.scope) == ("all", "all")


async def test_health_and_metrics_are_served_over_http(
    stack: Stack,
    running_worker: tuple[Worker, Settings],
) -> None:
    worker, settings = running_worker
    channel = await stack.amqp.channel()
    tap = await tap_queue(channel, stack.topology.exchange)
    await publish_run_request(stack.amqp, stack.topology, RunRequested(job_name=settings.job_name))
    await collect(tap, 9, timeout_s=30)

    base = f"http://127.0.0.1:{worker.http_port}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/readyz") as response:
            ready = await response.json()
            assert response.status == 200
        async with http.get(f"{base}/metrics") as response:
            metrics = await response.text()
    assert ready["checks"] == {"database": "ok", "broker": "ok", "consumer": "ok"}
    for name in (
        "recalc_daos_processed_total",
        "recalc_daos_failed_total",
        "outbox_pending",
        "outbox_published_total",
    ):
        assert f"\n{name} " in metrics
    assert "\nrecalc_last_run_status 1.0" in metrics
