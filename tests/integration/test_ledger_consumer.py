"""The ledger's consumer on the real RabbitMQ and Postgres: batches, dead letters, outages."""

from __future__ import annotations

import asyncio
import random
import uuid

import aio_pika
import asyncpg
import orjson
import pytest
from aio_pika.abc import AbstractRobustConnection
from prometheus_client import REGISTRY

from chassis.batch_consumer import PARSE_CHUNK
from chassis.broker import declare_topology
from chassis.deadletter import REASON_HEADER
from chassis.topology import Topology, dead_letter_queue
from contracts.codec import event_body, parse_event
from contracts.events import DaoProcessed, DaoProcessedPayload, Event
from contracts.topology import BrokerNames
from job_ledger import consumer as consumer_module
from job_ledger.consumer import event_consumer
from job_ledger.job_logs import load_rows
from job_ledger.projection import fold_jobs
from tests.support.broker import collect, eventually
from tests.support.ledger import (
    JOB_NAME,
    consuming,
    job_events,
    publish,
    publish_raw,
)
from tests.support.postgres import ensure_postgres_started, restart_postgres


@pytest.fixture
async def declared(amqp: AbstractRobustConnection, topology: BrokerNames) -> BrokerNames:
    channel = await amqp.channel()
    await declare_topology(channel, Topology.of(topology))
    await channel.close()
    return topology


async def stored_count(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM job_events"))


async def test_garbage_is_dead_lettered_with_its_reason_and_the_good_messages_are_folded(
    pool: asyncpg.Pool, amqp: AbstractRobustConnection, declared: BrokerNames
) -> None:
    job_id = uuid.uuid4()
    good = job_events(job_id, 3)
    body = orjson.loads(event_body(good[1]))
    clashing = DaoProcessed(  # the same sequence as good[1], another event id
        job_id=job_id,
        job_name=JOB_NAME,
        sequence=1,
        payload=DaoProcessedPayload(dao_id="other", dao_name="O", score=2, duration_ms=1),
    )
    garbage = {
        "not-json": b"{not json",
        "unknown-type": orjson.dumps({**body, "event_type": "DaoExploded"}),
        "wrong-version": orjson.dumps({**body, "schema_version": 2}),
        "missing-fields": orjson.dumps({k: v for k, v in body.items() if k != "payload"}),
    }
    async with consuming(pool, amqp, declared):
        await publish(amqp, declared, good[:1])
        for message_id, raw in garbage.items():
            await publish_raw(amqp, declared, raw, f"{JOB_NAME}.dao.processed", message_id)
        await publish(amqp, declared, good[1:])
        await eventually(lambda: stored_count(pool), lambda n: n == 3)
        await publish(amqp, declared, [clashing])
        dead_queue = await (await amqp.channel()).get_queue(
            dead_letter_queue(declared.ledger_queue)
        )
        dead = await collect(dead_queue, 5)

    reasons = {m.message_id: str((m.headers or {})[REASON_HEADER]) for m in dead}
    assert "invalid JSON" in reasons["not-json"]
    assert "unknown event_type 'DaoExploded'" in reasons["unknown-type"]
    assert "unknown schema_version 2" in reasons["wrong-version"]
    assert "payload: Field required" in reasons["missing-fields"]
    assert f"sequence 1 of job {job_id} is already taken" in reasons[str(clashing.event_id)]
    assert {m.body for m in dead if m.message_id == "not-json"} == {b"{not json"}
    async with pool.acquire() as conn:
        rows = await load_rows(conn)
    assert rows == fold_jobs(good)
    assert (
        await pool.fetchval("SELECT payload->>'dao_id' FROM job_events WHERE sequence = 1")
        == "dao-1"
    )


async def test_two_consumers_on_one_queue_fold_exactly_what_one_does(
    pool: asyncpg.Pool, amqp_url: str, amqp: AbstractRobustConnection, declared: BrokerNames
) -> None:
    jobs = [uuid.uuid4() for _ in range(3)]
    events = [e for job in jobs for e in job_events(job, 700, fail_every=5)]
    deliveries = events + random.sample(events, 300)  # a few hundred delivered twice
    random.shuffle(deliveries)
    second = await aio_pika.connect_robust(amqp_url)
    try:
        async with (
            consuming(pool, amqp, declared, batch_size=100),
            consuming(pool, second, declared, batch_size=100),
        ):
            await publish(amqp, declared, deliveries)
            await eventually(lambda: stored_count(pool), lambda n: n == len(events), timeout_s=60)
            await eventually(
                lambda: pool.fetchval("SELECT sum(events_received) FROM job_logs"),
                lambda n: n == len(events),
            )
    finally:
        await second.close()
    async with pool.acquire() as conn:
        assert await load_rows(conn) == fold_jobs(events)
    dead_name = dead_letter_queue(declared.ledger_queue)
    assert await (await amqp.channel()).declare_queue(dead_name, passive=True) is not None
    dead = await (await amqp.channel()).get_queue(dead_name)
    assert await dead.get(fail=False) is None, "nothing good was dead-lettered"


def retries() -> float:
    return REGISTRY.get_sample_value("ledger_database_retries_total") or 0.0


@pytest.mark.chaos
async def test_a_postgres_restart_loses_nothing_and_the_consumer_resumes_by_itself(
    pool: asyncpg.Pool, amqp: AbstractRobustConnection, declared: BrokerNames
) -> None:
    job_id = uuid.uuid4()
    events = job_events(job_id, 4000)
    retries_before = retries()
    try:
        async with consuming(pool, amqp, declared, batch_size=200) as (_, task):
            await publish(amqp, declared, events[:1000])
            await eventually(lambda: stored_count(pool), lambda n: n > 0)
            restarting = asyncio.create_task(asyncio.to_thread(restart_postgres))
            await publish(amqp, declared, events[1000:])
            await restarting
            await eventually(lambda: stored_count(pool), lambda n: n == len(events), timeout_s=60)
            assert not task.done(), "the consumer kept running through the outage"
    finally:
        await asyncio.to_thread(ensure_postgres_started)
    assert retries() > retries_before, "the consumer did meet the outage"
    async with pool.acquire() as conn:
        assert await load_rows(conn) == fold_jobs(events)


async def test_a_lost_consumer_fails_readiness_and_is_attached_again(
    pool: asyncpg.Pool, amqp: AbstractRobustConnection, declared: BrokerNames
) -> None:
    async with consuming(pool, amqp, declared) as (consumer, _):
        attachment = consumer.attachment
        assert await attachment.problem() is None
        # What a broker restart has been seen to leave behind: the channel up, no consumer.
        assert attachment.channel is not None and attachment.consumer_tag is not None
        underlay = await attachment.channel.get_underlay_channel()
        await underlay.basic_cancel(attachment.consumer_tag)
        problem = await attachment.problem()
        assert problem is not None and "not attached" in problem

        assert await attachment.reattach_if_lost() is True
        assert await attachment.problem() is None
        events = job_events(uuid.uuid4(), 5)
        await publish(amqp, declared, events)
        await eventually(lambda: stored_count(pool), lambda n: n == 5)


async def test_a_batch_lets_the_event_loop_run_other_work_while_it_parses(
    pool: asyncpg.Pool,
    amqp: AbstractRobustConnection,
    declared: BrokerNames,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events = job_events(uuid.uuid4(), 2 * PARSE_CHUNK + 20)
    await publish(amqp, declared, events)
    queue = await (await amqp.channel()).get_queue(declared.ledger_queue)
    batch = [await queue.get(no_ack=False, timeout=10) for _ in events]
    # Each parse notes how often another task has run so far: equal notes, no yield between.
    other_work_runs = 0
    notes: list[int] = []

    def parse_noting(body: bytes) -> Event:
        notes.append(other_work_runs)
        return parse_event(body)

    async def other_work() -> None:
        nonlocal other_work_runs
        while True:
            other_work_runs += 1
            await asyncio.sleep(0)

    monkeypatch.setattr(consumer_module, "parse_event", parse_noting)
    running = asyncio.create_task(other_work())
    try:
        await event_consumer(
            pool, amqp, Topology.of(declared).queue(declared.ledger_queue)
        ).handle_batch(batch)
    finally:
        running.cancel()
    chunks = [notes[i : i + PARSE_CHUNK] for i in range(0, len(notes), PARSE_CHUNK)]
    assert [len(set(chunk)) for chunk in chunks] == [1, 1, 1], "no yield inside a chunk"
    assert len({chunk[0] for chunk in chunks}) == 3, "a yield between chunks"
    assert await stored_count(pool) == len(events)


async def test_an_event_the_database_refuses_is_dead_lettered_alone_and_its_batch_folded(
    pool: asyncpg.Pool, amqp: AbstractRobustConnection, declared: BrokerNames
) -> None:
    job_id = uuid.uuid4()
    good = job_events(job_id, 6)
    # A valid event by the contract that Postgres refuses to store: jsonb holds no NUL.
    refused = DaoProcessed(
        job_id=job_id,
        job_name=JOB_NAME,
        sequence=6,
        payload=DaoProcessedPayload(dao_id="nul", dao_name="N\u0000L", score=1, duration_ms=1),
    )
    await publish(amqp, declared, [*good[:3], refused, *good[3:]])
    async with consuming(pool, amqp, declared, batch_size=100):
        await eventually(lambda: stored_count(pool), lambda n: n == len(good))
        dead_queue = await (await amqp.channel()).get_queue(
            dead_letter_queue(declared.ledger_queue)
        )
        [dead] = await collect(dead_queue, 1)

    assert dead.message_id == str(refused.event_id)
    reason = str((dead.headers or {})[REASON_HEADER])
    assert reason.startswith("database rejected the event: UntranslatableCharacterError"), reason
    async with pool.acquire() as conn:
        assert await load_rows(conn) == fold_jobs(good)
