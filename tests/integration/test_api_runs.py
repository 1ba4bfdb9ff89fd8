"""Asking for runs over the API: the RunRequested really lands on the commands queue.

The publisher handed to the app is the real thing in small: a confirming channel on the test's
own topology, publishing to the commands queue by name, as the ledger's bootstrap does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import asyncpg
import pytest
from aio_pika.abc import AbstractRobustConnection

from chassis.broker import declare_topology, publisher_channel
from chassis.topology import Topology
from contracts import BrokerNames, RunRequested, encode_command
from tests.support.ledger import take_commands
from tests.support.ledger_web import (
    AUTH,
    NOW,
    Ledger,
    error,
    insert_job,
    post_json,
    served_ledger,
)


@pytest.fixture
async def ledger(
    pool: asyncpg.Pool, amqp: AbstractRobustConnection, topology: BrokerNames
) -> AsyncIterator[Ledger]:
    """The served ledger, publishing its run requests to the test's commands queue."""
    await declare_topology(await amqp.channel(), Topology.of(topology))
    channel = await publisher_channel(amqp)

    async def publish(command: RunRequested) -> None:
        await channel.default_exchange.publish(
            encode_command(command), routing_key=topology.commands_queue, mandatory=True
        )

    try:
        async with served_ledger(pool, request_run=publish) as served:
            yield served
    finally:
        await channel.close()


async def test_run_publishes_a_manual_run_of_every_dao_and_answers_202(
    ledger: Ledger,
    http: aiohttp.ClientSession,
    amqp: AbstractRobustConnection,
    topology: BrokerNames,
) -> None:
    status, body = await post_json(http, f"{ledger.url}/api/admin/jobs/run")
    assert status == 202
    [command] = await take_commands(amqp, topology, 1)
    assert body == {
        "data": {
            "requestId": str(command.request_id),
            "jobName": "weekly-gvs-recalculation",
            "trigger": "manual",
            "daoIds": None,
            "requestedAt": "2025-12-22T12:00:00.000Z",
        }
    }
    assert (command.job_name, command.trigger, command.dao_ids) == (
        "weekly-gvs-recalculation",
        "manual",
        None,
    )


async def test_run_takes_an_optional_job_name_and_dao_subset(
    ledger: Ledger,
    http: aiohttp.ClientSession,
    amqp: AbstractRobustConnection,
    topology: BrokerNames,
) -> None:
    status, body = await post_json(
        http, f"{ledger.url}/api/admin/jobs/run", {"jobName": "backfill", "daoIds": ["a", "b"]}
    )
    assert status == 202
    [command] = await take_commands(amqp, topology, 1)
    assert (str(command.request_id), command.job_name, command.dao_ids) == (
        body["data"]["requestId"],
        "backfill",
        ["a", "b"],
    )


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"daoIds": []}',
        b'{"daoIds": [""]}',
        b'{"jobName": "A B"}',
        b'{"force": true}',
        b'{"jobName": 7}',
    ],
)
async def test_run_refuses_a_malformed_body_with_a_400_and_publishes_nothing(
    ledger: Ledger,
    http: aiohttp.ClientSession,
    amqp: AbstractRobustConnection,
    topology: BrokerNames,
    body: bytes,
) -> None:
    async with http.post(
        f"{ledger.url}/api/admin/jobs/run",
        data=body,
        headers={**AUTH, "Content-Type": "application/json"},
    ) as response:
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "BAD_REQUEST"
    assert await take_commands(amqp, topology, 1, within_s=0.3) == []


async def test_retry_failed_publishes_that_jobs_failed_daos_with_trigger_retry(
    ledger: Ledger,
    http: aiohttp.ClientSession,
    amqp: AbstractRobustConnection,
    topology: BrokerNames,
) -> None:
    job = await insert_job(
        ledger.pool,
        started_at=NOW - timedelta(hours=1),
        status="failed",
        processed=1,
        total=4,
        failures=[("d2", "Aave", "timeout"), ("d9", "Lido", "HTTP 502"), ("d4", "Comp", "x")],
        job_name="weekly-gvs-recalculation",
    )
    status, body = await post_json(http, f"{ledger.url}/api/admin/job-logs/{job}/retry-failed")
    assert status == 202
    [command] = await take_commands(amqp, topology, 1)
    assert (str(command.request_id), command.trigger, command.dao_ids) == (
        body["data"]["requestId"],
        "retry",
        ["d2", "d9", "d4"],
    )
    assert body["data"]["daoIds"] == ["d2", "d9", "d4"]


async def test_retry_is_refused_with_409_when_nothing_failed_or_the_job_still_runs(
    ledger: Ledger,
    http: aiohttp.ClientSession,
    amqp: AbstractRobustConnection,
    topology: BrokerNames,
) -> None:
    clean = await insert_job(ledger.pool, started_at=NOW, failures=None)
    running = await insert_job(
        ledger.pool, started_at=NOW, status="running", failures=[("d1", "Uni", "boom")]
    )
    assert await post_json(http, f"{ledger.url}/api/admin/job-logs/{clean}/retry-failed") == (
        409,
        error(409, "CONFLICT", "The job has no failed DAOs to retry"),
    )
    assert await post_json(http, f"{ledger.url}/api/admin/job-logs/{running}/retry-failed") == (
        409,
        error(409, "CONFLICT", "The job is still running; retry its failed DAOs once it finished"),
    )
    assert await take_commands(amqp, topology, 1, within_s=0.3) == []


async def test_a_run_the_broker_does_not_take_is_a_503_not_a_202(
    pool: asyncpg.Pool,
    http: aiohttp.ClientSession,
    amqp: AbstractRobustConnection,
    unique: str,
) -> None:
    # Published to a queue that does not exist: the mandatory publish comes back unroutable.
    channel = await publisher_channel(amqp)

    async def publish_nowhere(command: RunRequested) -> None:
        await channel.default_exchange.publish(
            encode_command(command), routing_key=f"test.{unique}.absent", mandatory=True
        )

    try:
        async with served_ledger(pool, request_run=publish_nowhere) as served:
            status, body = await post_json(http, f"{served.url}/api/admin/jobs/run")
    finally:
        await channel.close()
    assert (status, body) == (
        503,
        error(503, "UNAVAILABLE", "Could not hand the run request to the broker; try again"),
    )
    # Nothing was sent, so nothing waits for an answer.
    assert await pool.fetchval("SELECT count(*) FROM run_requests") == 0
