"""Scenarios 5-7: what arrives is wrong (copies, disorder, garbage) or the providers fail."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections import Counter

import aio_pika
import aiohttp

from chassis.broker import publisher_channel
from chassis.deadletter import REASON_HEADER
from chassis.topology import dead_letter_queue
from contracts.codec import encode_event, parse_event, routing_key
from tests.chaos.campaign import Context
from tests.chaos.crashes import UNSENT, run_timeout, started
from tests.chaos.figures import Row, measure, settle
from tests.chaos.stack import PASSWORD, Stack
from tests.support.broker import eventually
from tests.support.fake_resend import Reply, resend_error
from tests.support.fake_slack import slack_error

FINISHED = "SELECT count(*) FROM {recalc}.jobs WHERE status <> 'running'"
JOB = "weekly-gvs-recalculation"


async def queue_depths(amqp_url: str, *names: str) -> list[int]:
    """Ready messages per queue (passive declares). Returns -1 for a queue it cannot see."""
    depths = []
    connection = await aio_pika.connect(amqp_url)
    try:
        for name in names:
            channel = await connection.channel()
            try:
                queue = await channel.declare_queue(name, passive=True)
                depths.append(int(queue.declaration_result.message_count or 0))
            except aio_pika.exceptions.AMQPError:
                depths.append(-1)
    finally:
        await connection.close()
    return depths


async def published_events(stack: Stack) -> list[bytes]:
    assert stack.pool is not None
    rows = await stack.pool.fetch(
        f'SELECT body FROM "{stack.names.recalc_schema}".outbox'
        f' UNION ALL SELECT body FROM "{stack.names.notifier_schema}".outbox'
    )
    return [bytes(r["body"]) for r in rows]


async def duplicates_and_reordering(ctx: Context) -> Row:
    """The ledger's queue emptied and refilled with every event of a run three times over,
    shuffled, before the ledger ever starts; the notifier gets the copies too."""
    row = Row("5 duplicates and reordering")
    daos = ctx.scale.mid_daos
    async with ctx.stack(daos) as stack:
        await stack.start("notifier", "worker")
        await stack.import_daos()
        await stack.trigger()
        await stack.wait_for(FINISHED, 1, run_timeout(daos))
        await stack.wait_for(UNSENT, 0, 60)
        topology = stack.names.topology
        # The notifier's NotificationSent lands in the ledger's queue too: wait for it.
        await stack.wait_for(
            "SELECT count(*) FROM {notifier}.deliveries WHERE state = 'pending'", 0, 60
        )
        await stack.wait_for("SELECT count(*) FROM {notifier}.outbox WHERE sent_at IS NULL", 0, 60)
        bodies = await published_events(stack)
        await eventually(
            lambda: queue_depths(ctx.amqp_url, topology.ledger_queue),
            lambda d: d == [len(bodies)],
            timeout_s=30,
        )
        copies = bodies * 3
        ctx.random.shuffle(copies)
        connection = await aio_pika.connect_robust(ctx.amqp_url)
        try:
            await (await (await connection.channel()).get_queue(topology.ledger_queue)).purge()
            channel = await publisher_channel(connection)
            exchange = await channel.get_exchange(topology.exchange)
            for start in range(0, len(copies), 200):
                batch = [parse_event(body) for body in copies[start : start + 200]]
                await asyncio.gather(
                    *(
                        exchange.publish(encode_event(e), routing_key(e), mandatory=True)
                        for e in batch
                    )
                )
        finally:
            await connection.close()
        await stack.start("ledger")
        await eventually(
            lambda: queue_depths(ctx.amqp_url, topology.ledger_queue, topology.notifier_queue),
            lambda d: d == [0, 0],
            timeout_s=120,
        )
        await settle(stack, row, 120)
        row.notes.append(
            f"{len(copies)} deliveries (each of {len(bodies)} events 3 times, shuffled) "
            "to a ledger that never saw the run; the notifier got 4 JobFinished"
        )
        return await measure(stack, row)


def poison(index: int, job_id: uuid.UUID, rng: random.Random) -> tuple[bytes, str]:
    """The ``index``-th malformed message and its routing key: bad JSON, wrong shapes, an
    unknown schema version, an unknown type, binary junk."""
    real = {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "event_type": "DaoProcessed",
        "schema_version": 1,
        "job_id": str(job_id),
        "job_name": JOB,
        "sequence": 10_000_000 + index,
        "occurred_at": "2025-06-02T00:00:00Z",
        "payload": {"dao_id": "x", "dao_name": "x", "score": 1.0, "duration_ms": 1},
    }
    kinds: list[bytes] = [
        b"{not json",
        json.dumps({**real, "schema_version": 99}).encode(),
        json.dumps({**real, "event_type": "DaoExploded"}).encode(),
        json.dumps({**real, "payload": {"score": "lots"}}).encode(),
        json.dumps([real]).encode(),
        rng.randbytes(64),
        json.dumps({**real, "job_id": "'; DROP TABLE job_events; --"}).encode(),
        b"",
    ]
    keys = [f"{JOB}.dao.processed", f"{JOB}.job.finished", f"{JOB}.job.abandoned", "x.y"]
    return kinds[index % len(kinds)], keys[index % len(keys)]


def notifier_takes(key: str) -> bool:
    return key.endswith((".job.finished", ".job.abandoned", ".job.missed"))


async def dead_letters(amqp_url: str, queue_name: str) -> list[str]:
    """Take every message of a dead-letter queue; returns their reasons ("" when none)."""
    reasons = []
    connection = await aio_pika.connect(amqp_url)
    try:
        queue = await (await connection.channel()).declare_queue(queue_name, passive=True)
        while (message := await queue.get(fail=False)) is not None:
            reasons.append(str((message.headers or {}).get(REASON_HEADER, "")))
            await message.ack()
    finally:
        await connection.close()
    return reasons


async def poison_messages(ctx: Context) -> Row:
    """Malformed messages published to the exchange while a run goes on."""
    row = Row("6 poison messages")
    daos = ctx.scale.mid_daos
    count = ctx.scale.poison
    async with ctx.stack(daos) as stack:
        await started(stack, daos)
        pids = {name: p.process.pid for name, p in stack.processes.items() if p.process}
        await stack.trigger()
        topology = stack.names.topology
        messages = [
            poison(i, uuid.UUID(int=ctx.random.getrandbits(128), version=4), ctx.random)
            for i in range(count)
        ]
        connection = await aio_pika.connect_robust(ctx.amqp_url)
        try:
            channel = await publisher_channel(connection)
            exchange = await channel.get_exchange(topology.exchange)
            for i, (body, key) in enumerate(messages):
                await exchange.publish(aio_pika.Message(body, message_id=f"poison-{i}"), key)
        finally:
            await connection.close()
        await stack.wait_for(FINISHED, 1, run_timeout(daos))
        await settle(stack, row, 120)
        to_notifier = sum(notifier_takes(key) for _, key in messages)
        dead_queues = (
            dead_letter_queue(topology.ledger_queue),
            dead_letter_queue(topology.notifier_queue),
        )
        await eventually(
            lambda: queue_depths(ctx.amqp_url, *dead_queues),
            lambda d: d == [count, to_notifier],
            timeout_s=60,
        )
        reasons = await dead_letters(ctx.amqp_url, dead_queues[0])
        reasons += await dead_letters(ctx.amqp_url, dead_queues[1])
        row.check(all(reasons), f"{sum(not r for r in reasons)} dead letters without a reason")
        same = {name: p.process.pid for name, p in stack.processes.items() if p.process}
        row.check(
            same == pids and all(p.running and p.starts == 1 for p in stack.processes.values()),
            "a consumer restarted",
        )
        kinds = Counter(r.split(":")[0] for r in reasons)
        row.notes.append(
            f"{count} malformed: {count} in the ledger's DLQ, {to_notifier} in the notifier's, "
            f"every one with a reason ({', '.join(f'{k} {n}' for k, n in kinds.most_common(3))}"
            "…); same pids"
        )
        return await measure(stack, row)


async def notifications(stack: Stack, job_id: str) -> dict[str, dict[str, object]]:
    """The job's notifications as the API shows them, by channel."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            stack.url("ledger", "/api/admin/job-logs"),
            params={"id": job_id},
            headers={"Authorization": f"Bearer {PASSWORD}"},
        ) as response,
    ):
        body = await response.json()
    [job] = body["data"]
    return {n["channel"]: n for n in job["notifications"]}


async def failing_providers(ctx: Context) -> Row:
    """Resend and Slack answering 500, 429 with Retry-After and nothing at all, then for one
    run failing for good: every alert ends sent or failed, once, and the API shows it."""
    row = Row("7 failing providers")
    async with ctx.stack(ctx.scale.mid_daos) as stack:
        await started(stack, ctx.scale.mid_daos)
        retry_after = {"Retry-After": "1"}
        stack.resend.script(
            resend_error(500, "internal_server_error", "boom"),
            resend_error(429, "rate_limit_exceeded", "slow down", **retry_after),
            Reply(hang=True),
        )
        stack.slack.script(
            slack_error(500, "internal_error"),
            slack_error(429, "rate_limited", **retry_after),
            Reply(hang=True),
        )
        # One DAO in two has no data: a completed run with a 50 % failure rate, so Slack too.
        await stack.trigger(dao_ids=["dao-00000", "dao-00099"])
        await stack.wait_for(FINISHED, 1, 60)
        final = "SELECT count(*) FROM {notifier}.deliveries WHERE state IN ('sent', 'failed')"
        await stack.wait_for(final, 2, 60)
        stack.resend.failing = stack.slack.failing = True
        await stack.trigger(dao_ids=["dao-00001", "dao-00199"])
        await stack.wait_for(FINISHED, 2, 60)
        await stack.wait_for(final, 4, 90)
        await settle(stack, row, 60)
        stack.resend.failing = stack.slack.failing = False
        assert stack.pool is not None
        jobs = [
            str(r["id"])
            for r in await stack.pool.fetch(
                f'SELECT id FROM "{stack.names.recalc_schema}".jobs ORDER BY started_at'
            )
        ]
        shown = [
            await eventually(
                lambda j=job: notifications(stack, j),  # type: ignore[misc]
                lambda n: len(n) == 2,
                timeout_s=30,
            )
            for job in jobs
        ]
        states = [{c: n["state"] for c, n in s.items()} for s in shown]
        row.check(states[0] == {"email": "sent", "slack": "sent"}, f"first run: {states[0]}")
        row.check(states[1] == {"email": "failed", "slack": "failed"}, f"second run: {states[1]}")
        row.check(all(n["error"] for n in shown[1].values()), "a failure without its error")
        pending = await stack.scalar(
            "SELECT count(*) FROM {notifier}.deliveries WHERE state NOT IN ('sent', 'failed')"
        )
        row.check(pending == 0, f"{pending} deliveries neither sent nor failed")
        await measure(stack, row, emails_expected=False)
        row.check(row.emails == 1, f"{row.emails} emails accepted, expected 1")
        row.lost += max(0, pending)
        attempts = {c: n["attempts"] for c, n in shown[0].items()}
        row.notes.append(
            f"run 1 sent after 500, 429, no answer (attempts {attempts}); run 2 failed after "
            f"{shown[1]['email']['attempts']} attempts, both visible in the API"
        )
        return row
