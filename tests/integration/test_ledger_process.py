"""The real ``job-ledger`` console script: serve, SIGKILL mid-stream, SIGTERM, operations.

Runs the process as an operator would (environment variables only) against this test's own
schema and broker names.
"""

from __future__ import annotations

import asyncio
import functools
import operator
import random
import uuid
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from aio_pika.abc import AbstractIncomingMessage

from chassis.broker import declare_topology, publisher_channel
from chassis.topology import Topology, dead_letter_queue
from contracts.codec import encode_event, parse_command
from job_ledger.job_logs import load_rows
from job_ledger.projection import fold_jobs
from tests.harness.processes import (
    SCRIPTS,
    ServiceProcess,
    run_command,
    running,
    wait_http_ok,
)
from tests.harness.stack import Stack
from tests.support.broker import eventually
from tests.support.ledger import job_events, publish, publish_raw

PASSWORD = "correct horse battery staple"


@pytest.fixture
def env(stack: Stack) -> dict[str, str]:
    return {**stack.ledger_env(), "ADMIN_PASSWORD": PASSWORD}


def ledger(
    env: dict[str, str], tmp_path: Path, port: int, name: str = "job-ledger"
) -> ServiceProcess:
    return ServiceProcess(name, ["job-ledger", "serve", "--port", str(port)], env, tmp_path)


async def cli(
    env: dict[str, str], *args: str, extra: dict[str, str] | None = None
) -> tuple[int, str, str]:
    return await run_command(
        [str(SCRIPTS / "job-ledger"), *args], {"PATH": "/usr/bin:/bin", **env, **(extra or {})}
    )


async def stored(pool: asyncpg.Pool) -> int:
    # JobMissed excluded: a fresh schema's first schedule check may well find a missed slot.
    return int(
        await pool.fetchval("SELECT count(*) FROM job_events WHERE event_type <> 'JobMissed'")
    )


@pytest.mark.chaos
async def test_a_20000_event_job_survives_three_sigkills_of_the_ledger(
    stack: Stack,
    pool: asyncpg.Pool,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    channel = await stack.amqp.channel()
    await declare_topology(channel, Topology.of(stack.topology))
    events = job_events(uuid.uuid4(), 20_000)
    port = stack.port()
    process = ledger(env, tmp_path, port)
    async with running(process):
        await wait_http_ok(f"http://127.0.0.1:{port}/readyz", process)
        publishing = asyncio.create_task(publish(stack.amqp, stack.topology, events))
        for threshold in sorted(random.sample(range(1_000, 19_000), 3)):
            await eventually(lambda: stored(pool), functools.partial(operator.le, threshold))
            await process.kill()
            await process.start()
        await publishing
        await eventually(lambda: stored(pool), lambda n: n == len(events), timeout_s=90)
        await eventually(
            lambda: pool.fetchval("SELECT events_received FROM job_logs"),
            lambda n: n == len(events),
        )
        assert await process.stop() == 0, process.log_tail()
    assert process.starts == 4
    assert (
        await pool.fetchval(
            "SELECT count(DISTINCT event_id) FROM job_events WHERE job_id = $1", events[0].job_id
        )
        == 20_000
    )
    async with pool.acquire() as conn:
        assert await load_rows(conn) == fold_jobs(events)
    code, out, _ = await cli(env, "rebuild")
    assert (code, out.strip()) == (0, "job_logs matches the event store")
    dead = await (await stack.amqp.channel()).get_queue(
        dead_letter_queue(stack.topology.ledger_queue)
    )
    assert await dead.get(fail=False) is None, "no good message was dead-lettered"


async def test_serve_is_ready_publishes_run_requests_and_drains_on_sigterm(
    stack: Stack,
    pool: asyncpg.Pool,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    port = stack.port()
    process = ledger(env, tmp_path, port)
    base = f"http://127.0.0.1:{port}"
    async with running(process), aiohttp.ClientSession() as http:
        await wait_http_ok(f"{base}/readyz", process)
        async with http.get(f"{base}/readyz") as response:
            body = await response.json()
        assert body["checks"] == {"database": "ok", "broker": "ok", "consumer": "ok"}

        async with http.post(
            f"{base}/api/admin/jobs/run", headers={"Authorization": f"Bearer {PASSWORD}"}
        ) as response:
            assert response.status == 202, await response.text()
        # A single-active-consumer quorum queue allows no basic.get: consume one message.
        commands = await (await stack.amqp.channel()).get_queue(stack.topology.commands_queue)
        received: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def take(message: AbstractIncomingMessage) -> None:
            await message.ack()
            if not received.done():
                received.set_result(message.body)

        tag = await commands.consume(take)
        try:
            body = await asyncio.wait_for(received, 10)
        finally:
            await commands.cancel(tag)
        assert parse_command(body).trigger == "manual"

        await publish(stack.amqp, stack.topology, job_events(uuid.uuid4(), 3))
        await eventually(lambda: stored(pool), lambda n: n == 3)
        async with http.get(f"{base}/metrics") as response:
            metrics = await response.text()
        assert 'ledger_events_folded_total{event_type="DaoProcessed"}' in metrics
        assert "ledger_batch_size_bucket" in metrics
        assert await process.stop() == 0, process.log_tail()


async def test_serve_refuses_to_start_without_admin_password(env: dict[str, str]) -> None:
    code, _, err = await cli(env, "serve", extra={"ADMIN_PASSWORD": ""})
    assert code == 2
    assert err.count("\n") == 1 and "ADMIN_PASSWORD: is required but not set" in err


async def test_an_unreachable_database_is_one_line_and_exit_code_2(
    stack: Stack, env: dict[str, str]
) -> None:
    dsn = f"postgresql://postgres@127.0.0.1:{stack.port()}/test"  # held, nothing listens
    code, _, err = await cli(env, "migrate", extra={"DATABASE_URL": dsn, "CONNECT_TIMEOUT": "2s"})
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("job-ledger: cannot connect to Postgres")


async def test_bad_input_is_one_line_and_exit_code_2(env: dict[str, str]) -> None:
    code, _, err = await cli(env, "rebuild", "--job", "not-a-uuid")
    assert (code, err) == (
        2,
        "job-ledger: error: argument --job: 'not-a-uuid' is not a job id (a UUID)\n",
    )


async def test_rebuild_reports_each_differing_column_fixes_it_and_exits_1(
    stack: Stack, pool: asyncpg.Pool, env: dict[str, str]
) -> None:
    channel = await stack.amqp.channel()
    await declare_topology(channel, Topology.of(stack.topology))
    job_id = uuid.uuid4()
    events = job_events(job_id, 10)
    from job_ledger.recording import record_events

    async with pool.acquire() as conn, conn.transaction():
        await record_events(conn, events)
    await pool.execute("UPDATE job_logs SET daos_processed = 99, status = 'failed'")

    code, out, _ = await cli(env, "rebuild", "--job", str(job_id))
    assert code == 1
    assert f"job {job_id}: status: live='failed' rebuilt='running'" in out
    assert f"job {job_id}: daos_processed: live=99 rebuilt=8" in out
    assert await cli(env, "rebuild") == (0, "job_logs matches the event store\n", "")


async def test_dead_letters_are_listed_without_being_consumed_and_replayed_by_id(
    stack: Stack,
    pool: asyncpg.Pool,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    channel = await stack.amqp.channel()
    await declare_topology(channel, Topology.of(stack.topology))
    [good] = job_events(uuid.uuid4(), 1)
    key = "weekly-gvs-recalculation.job.started"
    port = stack.port()
    process = ledger(env, tmp_path, port)

    async def depth() -> int:
        probe = await stack.amqp.channel()
        declared = await probe.declare_queue(
            dead_letter_queue(stack.topology.ledger_queue), passive=True
        )
        await probe.close()
        return int(declared.declaration_result.message_count or 0)

    async with running(process):
        await wait_http_ok(f"http://127.0.0.1:{port}/readyz", process)
        # Dead-lettered by the running ledger, with its reason:
        await publish_raw(stack.amqp, stack.topology, b"garbage", key, "m-1")
        # and a good event the broker itself dead-lettered (its delivery limit, say).
        publisher = await publisher_channel(stack.amqp)
        message = encode_event(good)
        message.headers = {
            **(message.headers or {}),
            "x-death": [
                {"reason": "delivery_limit", "count": 1, "routing-keys": [key], "exchange": ""}
            ],
        }
        await publisher.default_exchange.publish(
            message, dead_letter_queue(stack.topology.ledger_queue), mandatory=True
        )
        await eventually(depth, lambda n: n == 2)

        for _ in range(2):  # listing twice shows the same: nothing was consumed
            code, out, _ = await cli(env, "dead-letters", "list")
            assert code == 0
            rows = {line.split("\t")[0]: line.split("\t") for line in out.splitlines()[1:]}
            assert sorted(rows) == sorted(["m-1", str(good.event_id)])
        assert rows["m-1"][1] == key
        assert "invalid JSON" in rows["m-1"][3] and rows["m-1"][4] == "garbage"
        assert rows[str(good.event_id)][1:2] == [key]
        assert rows[str(good.event_id)][3] == "broker: delivery_limit after 1 times"

        code, _, err = await cli(env, "dead-letters", "replay", "--id", str(good.event_id))
        last = err.splitlines()[-1]
        assert (code, last) == (
            0,
            f"1 replayed from {dead_letter_queue(stack.topology.ledger_queue)}",
        )
        await eventually(lambda: stored(pool), lambda n: n == 1)
        assert await pool.fetchval("SELECT has_started FROM job_logs WHERE id = $1", good.job_id)
        assert await depth() == 1, "the replayed message left the DLQ, the other stayed"
