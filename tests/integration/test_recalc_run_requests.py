"""Every run request the worker can parse gets one answer on the exchange: RunAccepted with
the job it started, or RunRefused with the reason, and the command is acked, not dead-lettered;
``recalculator trigger --wait`` prints that answer.

The worker runs in this process on the real Postgres and RabbitMQ; answers are read from a tap
queue bound to the test's exchange.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from uuid import UUID

import asyncpg
import pytest
from aio_pika.abc import AbstractQueue, AbstractRobustConnection

from chassis.topology import dead_letter_queue
from contracts import (
    BrokerNames,
    Event,
    JobFinished,
    RunAccepted,
    RunRefused,
    RunRequested,
    parse_event,
)
from recalculator.answers import answer_event_id
from recalculator.bootstrap import bootstrap
from recalculator.config import Settings
from recalculator.run import RunRequest
from recalculator.trigger import publish_run_request
from recalculator.worker import Worker
from tests.harness.processes import run_command
from tests.harness.scratch import service_env
from tests.harness.stack import Stack
from tests.support.broker import collect, drain, eventually, tap_exchange
from tests.support.recalc import GatedSource, running_worker, seed_daos


@pytest.fixture
async def settings(stack: Stack) -> Settings:
    settings = stack.recalc_settings(dao_timeout="60s")
    await seed_daos(settings, 3, inactive=(2,))
    return settings


@pytest.fixture
async def source() -> GatedSource:
    return GatedSource()


@pytest.fixture
async def worker(settings: Settings, source: GatedSource) -> AsyncIterator[Worker]:
    async with running_worker(settings, source=source) as worker:
        yield worker


@pytest.fixture
async def tap(stack: Stack) -> AbstractQueue:
    return await tap_exchange(stack.amqp, stack.topology, "#.run.*")


async def answer_to(
    amqp: AbstractRobustConnection, topology: BrokerNames, tap: AbstractQueue, command: RunRequested
) -> Event:
    """Publish ``command`` as the ledger or the cron would; return the one answer it gets."""
    await publish_run_request(amqp, topology, command)
    [message] = await collect(tap, 1, timeout_s=20)
    answer = parse_event(message.body)
    assert isinstance(answer, RunAccepted | RunRefused)
    assert answer.payload.request_id == command.request_id
    return answer


async def commands_left(amqp: AbstractRobustConnection, topology: BrokerNames) -> tuple[int, int]:
    """Messages in the commands queue and in its dead-letter queue."""
    channel = await amqp.channel()
    try:
        queue = await channel.declare_queue(topology.commands_queue, passive=True)
        dead = await channel.declare_queue(dead_letter_queue(topology.commands_queue), passive=True)
        counts = (queue.declaration_result.message_count, dead.declaration_result.message_count)
    finally:
        await channel.close()
    return int(counts[0] or 0), int(counts[1] or 0)


async def jobs_and_refusals(settings: Settings) -> tuple[int, list[asyncpg.Record]]:
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        jobs = await conn.fetchval(f'SELECT count(*) FROM "{settings.recalc_schema}".jobs')
        refused = await conn.fetch(
            f'SELECT request_id, reason FROM "{settings.recalc_schema}".refused_requests'
        )
    finally:
        await conn.close()
    return int(jobs), refused


async def handled(worker: Worker, count: int) -> None:
    consumer = worker.consumer
    assert consumer is not None
    await eventually(lambda: asyncio.sleep(0, consumer.progress.handled), lambda n: n >= count)


async def test_an_accepted_request_names_its_job_and_a_redelivery_answers_nothing_more(
    stack: Stack,
    worker: Worker,
    source: GatedSource,
    settings: Settings,
    tap: AbstractQueue,
) -> None:
    source.open()
    everything = await tap_exchange(stack.amqp, stack.topology)
    command = RunRequested(job_name=settings.job_name, trigger="manual")

    accepted = await answer_to(stack.amqp, stack.topology, tap, command)
    events = [parse_event(m.body) for m in await collect(everything, 5, timeout_s=20)]

    assert isinstance(accepted, RunAccepted)
    assert accepted.event_id == answer_event_id(command.request_id, "accepted")
    assert accepted.payload.model_dump() == {
        "request_id": command.request_id,
        "trigger": "manual",
        "scope": "all",
        "daos_requested": None,
    }
    assert [type(e).__name__ for e in events] == [
        "RunAccepted",
        "JobStarted",
        "DaoProcessed",
        "DaoProcessed",
        "JobFinished",
    ]
    assert {e.job_id for e in events} == {accepted.job_id}
    assert isinstance(events[-1], JobFinished) and events[-1].payload.status == "completed"

    await publish_run_request(stack.amqp, stack.topology, command)
    await handled(worker, 2)
    assert await drain(everything, 0.5) == [], "no second run, no second answer"
    assert await commands_left(stack.amqp, stack.topology) == (0, 0)
    assert (await jobs_and_refusals(settings))[0] == 1


@pytest.mark.parametrize(
    ("job_name", "dao_ids", "reason"),
    [
        (
            "nightly-other-job",
            None,
            "unknown job name nightly-other-job: this worker runs weekly-gvs-recalculation",
        ),
        (None, ["dao-00", "gone", "also-gone"], "unknown DAO ids: also-gone, gone"),
        (None, ["dao-00", "dao-02"], "inactive DAO ids: dao-02"),
        (
            None,
            [],
            "no DAO ids given: a run of chosen DAOs needs at least one (null asks for all)",
        ),
    ],
)
async def test_a_request_the_worker_cannot_run_is_refused_with_the_reason_and_acked(
    stack: Stack,
    worker: Worker,
    settings: Settings,
    tap: AbstractQueue,
    job_name: str | None,
    dao_ids: list[str] | None,
    reason: str,
) -> None:
    command = RunRequested(job_name=job_name or settings.job_name, trigger="retry", dao_ids=dao_ids)

    refused = await answer_to(stack.amqp, stack.topology, tap, command)

    assert isinstance(refused, RunRefused)
    assert (refused.job_id, refused.job_name) == (command.request_id, command.job_name)
    assert refused.event_id == answer_event_id(command.request_id, "refused")
    assert refused.payload.model_dump() == {
        "request_id": command.request_id,
        "trigger": "retry",
        "reason": reason,
    }
    await handled(worker, 1)
    assert await commands_left(stack.amqp, stack.topology) == (0, 0), "acked, not dead-lettered"
    jobs, refusals = await jobs_and_refusals(settings)
    assert jobs == 0
    assert [tuple(r) for r in refusals] == [(command.request_id, reason)]


async def test_a_request_while_a_run_is_going_is_refused_naming_it_and_stays_refused(
    stack: Stack,
    worker: Worker,
    settings: Settings,
    tap: AbstractQueue,
) -> None:
    held = GatedSource()
    async with bootstrap(settings, source=held) as other:
        going = asyncio.create_task(
            other.recalculation.run(RunRequest(settings.job_name, "manual"))
        )
        try:
            await eventually(held.waiting, lambda n: n == 2)
            job_id = await other.pool.fetchval("SELECT id FROM jobs")
            command = RunRequested(job_name=settings.job_name, trigger="manual")

            refused = await answer_to(stack.amqp, stack.topology, tap, command)
        finally:
            held.open()
            outcome = await going

    assert isinstance(refused, RunRefused)
    assert refused.payload.reason == (
        f"a run of {settings.job_name} is already going (job {job_id})"
    )
    assert outcome.status == "completed"
    # The same request again, now that nothing runs: it was answered, so it stays refused.
    await publish_run_request(stack.amqp, stack.topology, command)
    await handled(worker, 2)
    assert await drain(tap, 0.5) == []
    assert await commands_left(stack.amqp, stack.topology) == (0, 0)
    jobs, refusals = await jobs_and_refusals(settings)
    assert (jobs, len(refusals)) == (1, 1), "only the other run's job"


async def trigger(settings: Settings, *args: str) -> tuple[int, str, str]:
    """``recalculator trigger`` as a subprocess, against this test's broker names."""
    env = {
        **os.environ,
        **service_env(
            settings.database_url.get_secret_value(),
            settings.amqp_url.get_secret_value(),
            settings.broker_names,
        ),
        "LOG_FORMAT": "json",
    }
    return await run_command([sys.executable, "-m", "recalculator", "trigger", *args], env)


async def test_trigger_wait_prints_the_job_an_accepted_request_started_and_exits_0(
    worker: Worker, source: GatedSource, settings: Settings
) -> None:
    source.open()

    code, out, err = await trigger(settings, "--wait", "20")

    assert code == 0, err
    request_id, answer = out.splitlines()
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        job_id = await conn.fetchval(
            f'SELECT id FROM "{settings.recalc_schema}".jobs WHERE request_id = $1',
            UUID(request_id),
        )
    finally:
        await conn.close()
    assert answer == f"accepted: job {job_id}"


async def test_trigger_wait_prints_why_a_request_was_refused_and_exits_3(
    worker: Worker, settings: Settings
) -> None:
    code, out, err = await trigger(settings, "--trigger", "retry", "--dao", "gone", "--wait")

    assert code == 3, err
    assert out.splitlines()[1:] == ["refused: unknown DAO ids: gone"]


async def test_trigger_wait_without_a_worker_says_no_answer_came_and_exits_1(
    settings: Settings,
) -> None:
    code, out, err = await trigger(settings, "--wait", "0.5")

    assert code == 1
    assert len(out.splitlines()) == 1, "the request id"
    assert err.strip().splitlines()[-1] == (
        f"no answer within 0.5s: the request waits in {settings.commands_queue}"
        " (is a worker running?)"
    )
