"""The worker's consumer on the commands queue across a broker restart and a lost consumer.

A broker restart has been seen to leave a robust channel without its consumer (aio-pika #231,
#334), and it leaves whatever command the worker holds without a channel to ack it on. The real
``recalculator worker`` goes through a real RabbitMQ restart (``stop_app`` / ``start_app``)
while it holds a command (a table lock keeps it before its job row, whatever the timing), so
the test is marked ``chaos``, keeps the downtime short and starts the broker again in a
``finally`` whatever happened. The in-process worker loses its consumer by a real
``basic.cancel`` on the broker: ``/readyz`` must say so, and the worker attach it again.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import UUID

import aio_pika
import aiohttp
import asyncpg
import pytest
from aio_pika.abc import AbstractQueue

from contracts import (
    BrokerNames,
    Event,
    JobFinished,
    JobStarted,
    RunAccepted,
    RunRequested,
    parse_event,
)
from recalculator.config import Settings
from recalculator.trigger import publish_run_request
from recalculator.worker import Worker
from tests.chaos.faults import ensure_broker_up, queue_consumers, stop_broker
from tests.harness.processes import (
    ServiceProcess,
    run_command,
    running,
    wait_http_ok,
)
from tests.harness.stack import Stack
from tests.support.broker import collect, consumer_count, eventually, tap_exchange
from tests.support.recalc import (
    GatedSource,
    running_worker,
    seed_daos,
)

REPO = Path(__file__).resolve().parents[2]
SAMPLE_DAOS = REPO / "data" / "daos.sample.json"
JOB = "weekly-gvs-recalculation"
# Longer than the robust connection's 5 s reconnect interval would add nothing: the restart,
# not its length, is what can leave the channel without its consumer.
DOWN_S = 3.0


async def requested_run_ends(amqp_url: str, topology: BrokerNames, job_name: str) -> list[Any]:
    """Publish a RunRequested as the cron or the ledger would; return the run's events, from
    RunAccepted to JobFinished, read on a tap of the exchange."""
    connection = await aio_pika.connect_robust(amqp_url)
    try:
        tap = await tap_exchange(connection, topology, f"{job_name}.#")
        command = RunRequested(job_name=job_name, trigger="cron")
        await publish_run_request(connection, topology, command)
        events = [parse_event((await collect(tap, 1, timeout_s=30))[0].body)]
        while not isinstance(events[-1], JobFinished):
            events.append(parse_event((await collect(tap, 1, timeout_s=30))[0].body))
    finally:
        await connection.close()
    accepted = events[0]
    assert isinstance(accepted, RunAccepted), events
    assert accepted.payload.request_id == command.request_id
    assert isinstance(events[1], JobStarted)
    assert {e.job_id for e in events} == {accepted.job_id}
    return events


def worker_process(env: dict[str, str], tmp_path: Path, port: int) -> ServiceProcess:
    return ServiceProcess(
        "recalculator-worker",
        ["recalculator", "worker"],
        {**env, "HEALTH_HOST": "127.0.0.1", "HEALTH_PORT": str(port)},
        tmp_path,
    )


@pytest.fixture
def env(stack: Stack) -> dict[str, str]:
    return stack.recalc_env()


async def blocked_on_jobs(pool: asyncpg.Pool, schema: str) -> int:
    """Sessions waiting for a lock on this schema's ``jobs`` (the worker's held command)."""
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = $1::regclass",
            f'"{schema}".jobs',
        )
    )


async def finished_runs(queue: AbstractQueue, runs: int) -> dict[UUID, list[Event]]:
    """Every event on ``queue`` until ``runs`` runs have their JobFinished, by job id."""
    by_job: dict[UUID, list[Event]] = defaultdict(list)
    while sum(isinstance(e[-1], JobFinished) for e in by_job.values()) < runs:
        try:
            [message] = await collect(queue, 1, timeout_s=30)
        except AssertionError:
            seen = {job: [e.event_type for e in events] for job, events in by_job.items()}
            raise AssertionError(f"{runs} finished runs expected; seen: {seen}") from None
        event = parse_event(message.body)
        by_job[event.job_id].append(event)
    return by_job


@pytest.mark.chaos
async def test_after_a_broker_restart_under_a_command_the_worker_process_runs_every_request(
    stack: Stack,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    code, _, err = await run_command(
        [sys.executable, "-m", "recalculator", "daos", "import", str(SAMPLE_DAOS)], env
    )
    assert code == 0, err
    pool = await asyncpg.create_pool(stack.database_url, min_size=1, max_size=2)
    port = stack.port()
    process = worker_process(env, tmp_path, port)
    readyz = f"http://127.0.0.1:{port}/readyz"
    before = RunRequested(job_name=JOB, trigger="cron")
    after = RunRequested(job_name=JOB, trigger="manual")
    try:
        async with running(process):
            await wait_http_ok(readyz, process)
            await restart_broker_while_held(
                pool, stack.schema, stack.amqp_url, stack.topology, before
            )
            name = stack.topology.commands_queue
            await eventually(
                functools.partial(queue_consumers, {name}),
                lambda found: found == {name: 1},
                timeout_s=30,
            )
            await wait_http_ok(readyz, process, timeout_s=30)
            await publish_once(stack.amqp_url, stack.topology, after)
            # The ledger's queue (bound to everything, durable) holds what was published.
            connection = await aio_pika.connect_robust(stack.amqp_url)
            try:
                ledger_queue = await (await connection.channel()).get_queue(
                    stack.topology.ledger_queue
                )
                runs = await finished_runs(ledger_queue, 2)
            finally:
                await connection.close()
            assert process.starts == 1 and process.running, process.log_tail()
            assert await process.stop() == 0, process.log_tail()
    finally:
        await pool.close()

    requested: set[UUID] = set()
    for events in runs.values():
        accepted, started, *_, finished = events
        assert isinstance(accepted, RunAccepted) and isinstance(started, JobStarted)
        assert isinstance(finished, JobFinished)
        assert (finished.payload.status, finished.payload.daos_processed) == ("completed", 11)
        requested.add(accepted.payload.request_id)
    assert requested == {before.request_id, after.request_id}, "one run per request"


async def restart_broker_while_held(
    pool: asyncpg.Pool, schema: str, amqp_url: str, topology: BrokerNames, command: RunRequested
) -> None:
    """Publish ``command`` and restart the broker while the worker holds it (delivered, not
    acked): a lock on ``jobs`` keeps it before its job row until the broker is down. The broker
    is started again whatever happened."""
    try:
        async with pool.acquire() as holder:
            lock = holder.transaction()
            await lock.start()
            await holder.execute(f'LOCK TABLE "{schema}".jobs IN ACCESS EXCLUSIVE MODE')
            await publish_once(amqp_url, topology, command)
            await eventually(lambda: blocked_on_jobs(pool, schema), lambda n: n >= 1)
            await stop_broker()
            # The run starts while the broker is down; its command has no channel.
            await lock.rollback()
        await asyncio.sleep(DOWN_S)  # the outage itself, not a synchronisation
    finally:
        await ensure_broker_up()


async def publish_once(amqp_url: str, topology: BrokerNames, command: RunRequested) -> None:
    """Publish ``command`` as the cron or the ledger would, on a connection of its own."""
    connection = await aio_pika.connect_robust(amqp_url)
    try:
        await publish_run_request(connection, topology, command)
    finally:
        await connection.close()


@pytest.fixture
async def served(stack: Stack) -> AsyncIterator[tuple[Worker, Settings]]:
    settings = stack.recalc_settings()
    await seed_daos(settings, 2)
    source = GatedSource()
    source.open()
    async with running_worker(settings, source=source) as worker:
        yield worker, settings


async def readiness(http: aiohttp.ClientSession, worker: Worker) -> tuple[int, Any]:
    async with http.get(f"http://127.0.0.1:{worker.http_port}/readyz") as response:
        return response.status, await response.json()


async def lose_consumer(worker: Worker, http: aiohttp.ClientSession) -> tuple[str, tuple[int, Any]]:
    """Cancel the worker's consumer on the broker; return its tag and the readiness seen then.

    What a broker restart has been seen to leave behind: the channel up, no consumer. Should
    the watch re-attach between the cancel and the readiness request (a few milliseconds of
    its 5 s interval), the readiness seen is of the new consumer: cancel that one instead.
    """
    assert worker.consumer is not None
    attachment = worker.consumer.attachment
    for _ in range(3):
        tag, channel = attachment.consumer_tag, attachment.channel
        assert tag is not None and channel is not None
        await (await channel.get_underlay_channel()).basic_cancel(tag)
        seen = await readiness(http, worker)
        if attachment.consumer_tag == tag:
            return tag, seen
    raise AssertionError("the watch re-attached before readiness could be read, three times")


async def test_a_consumer_the_broker_lost_fails_readiness_and_is_attached_again_by_itself(
    stack: Stack, served: tuple[Worker, Settings]
) -> None:
    worker, settings = served
    queue = settings.broker_names.commands_queue
    async with aiohttp.ClientSession() as http:
        assert await readiness(http, worker) == (
            200,
            {"status": "ready", "checks": {"database": "ok", "broker": "ok", "consumer": "ok"}},
        )

        lost, (status, body) = await lose_consumer(worker, http)
        assert await consumer_count(stack.amqp, queue) == 0
        assert status == 503
        assert body["checks"]["consumer"] == f"consumer {lost} is not attached to {queue}"

        # Nothing here attaches it again: the worker's own watch must.
        await eventually(lambda: readiness(http, worker), lambda seen: seen[0] == 200, timeout_s=30)
    assert await consumer_count(stack.amqp, queue) == 1
    events = await requested_run_ends(stack.amqp_url, settings.broker_names, settings.job_name)
    assert events[-1].payload.daos_processed == 2
