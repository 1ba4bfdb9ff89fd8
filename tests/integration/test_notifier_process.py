"""The notifier as its operators run it: ``python -m notifier`` in a subprocess.

A SIGKILL right after the provider took the request (and before its answer could be
recorded) must not lose the alert nor mail it twice: the restarted process resends with the
same Idempotency-Key. SIGTERM drains and exits 0. Bad configuration and unreachable services
end with one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import asyncpg
from aio_pika.abc import AbstractRobustConnection

from chassis.broker import declare_topology, publisher_channel
from chassis.deadletter import REASON_HEADER
from chassis.topology import Topology, dead_letter_queue
from contracts import (
    JobFinished,
    encode_event,
    parse_event,
    routing_key,
)
from tests.harness.processes import run_command
from tests.harness.stack import Stack
from tests.support.broker import collect, consumer_count, eventually
from tests.support.fake_resend import FakeResend, Reply
from tests.support.notifier_harness import deliveries, publish
from tests.support.outcomes import job_finished

# Settings a developer's shell may hold; the subprocess gets exactly the test's.
_SETTING_VARS = {
    "RESEND_API_KEY",
    "RESEND_API_URL",
    "SLACK_WEBHOOK_URL",
    "EMAIL_TRANSPORT",
    "CACHE_REVALIDATE_URL",
    "NOTIFIER_SCHEMA",
    "EVENTS_EXCHANGE",
}


def notifier_env(stack: Stack, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SETTING_VARS}
    env.update(stack.env())
    env.update(
        NOTIFIER_SCHEMA=stack.schema,
        LOG_FORMAT="json",
        NOTIFY_TIMEOUT="1s",
        NOTIFY_BACKOFF_MAX="50ms",
        NOTIFY_RESUME_INTERVAL="250ms",
        CONNECT_TIMEOUT="3s",
    )
    env.update(extra)
    return env


async def start(env: dict[str, str], log: Path, *args: str) -> asyncio.subprocess.Process:
    with log.open("ab") as sink:  # the child keeps its own copy of the descriptor
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "notifier", *args, env=env, stdout=sink, stderr=sink
        )


async def run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    return await run_command([sys.executable, "-m", "notifier", *args], env)


async def consuming(amqp: AbstractRobustConnection, queue: str) -> None:
    """Wait until a consumer is attached to ``queue`` (the subprocess is ready)."""
    await eventually(
        lambda: consumer_count(amqp, queue), lambda n: n >= 1, timeout_s=30, interval_s=0.1
    )


def completed_run() -> JobFinished:
    return job_finished("completed", 3, 3, duration_ms=4100, cache_invalidated=True)


async def test_killed_after_the_provider_took_the_email_it_resends_with_the_same_key(
    stack: Stack,
    tmp_path: Path,
) -> None:
    log = tmp_path / "notifier.log"
    async with FakeResend() as resend:
        env = notifier_env(
            stack,
            RESEND_API_KEY=resend.api_key,
            RESEND_API_URL=resend.url,
        )
        # Resend takes the request and its answer never comes back: outcome unknown.
        resend.script(Reply(hang=True))
        first = await start(env, log, "serve", "--port", "0")
        try:
            await consuming(stack.amqp, stack.topology.notifier_queue)
            event = completed_run()
            await publish(await stack.amqp.channel(), stack.topology, event)
            await resend.wait_for_requests(1)
        finally:
            first.kill()
            await first.wait()
        [record] = await deliveries(stack.database_url, stack.schema)
        assert (record["state"], record["attempts"]) == ("pending", 1)

        second = await start(env, log, "serve", "--port", "0")
        try:
            # The dead process's lease (timeout + 5s) runs out, then the record resumes.
            await resend.wait_for_requests(2, timeout_s=30)
            [record] = await eventually(
                lambda: deliveries(stack.database_url, stack.schema),
                lambda rows: rows[0]["state"] != "pending",
            )
        finally:
            second.terminate()
            code = await asyncio.wait_for(second.wait(), 20)

    assert (record["state"], record["attempts"], record["provider_id"]) == ("sent", 2, "email-1")
    before, after = resend.requests
    key = f"{event.job_id}/success"
    assert before.header("Idempotency-Key") == after.header("Idempotency-Key") == key
    assert before.json == after.json  # rendered again from the stored alert: the same email
    assert code == 0, log.read_text()[-2000:]


async def test_migrate_creates_the_tables_and_says_so(stack: Stack) -> None:
    env = notifier_env(stack)
    code, out, err = await run(env, "migrate")
    assert (code, out.strip()) == (
        0,
        f"{stack.schema}: applied 4 migration(s): chassis.outbox/0001_outbox.sql,"
        " notifier/0001_deliveries.sql, notifier/0002_outcomes_and_skipped.sql,"
        " notifier/0003_retention_indexes.sql",
    ), err
    conn = await asyncpg.connect(stack.database_url)
    try:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", stack.schema
        )
    finally:
        await conn.close()
    assert {r["table_name"] for r in tables} >= {
        "outbox",
        "deliveries",
        "outcomes",
        "processed_events",
    }
    again = await run(env, "migrate")
    assert again[:2] == (0, f"{stack.schema}: schema up to date\n")


async def test_bad_settings_and_unreachable_services_end_with_one_line_and_exit_2(
    stack: Stack,
) -> None:
    env = notifier_env(stack)
    cases = {
        "settings": ({**env, "NOTIFY_TIMEOUT": "soon", "EMAIL_TRANSPORT": "pigeon"}, "serve"),
        "postgres": ({**env, "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/test"}, "serve"),
        "rabbitmq": ({**env, "AMQP_URL": "amqp://guest:secret@127.0.0.1:1/"}, "serve"),
    }
    results = {name: await run(e, command) for name, (e, command) in cases.items()}

    for name, (code, _, err) in results.items():
        assert code == 2, (name, err)
        lines = [line for line in err.splitlines() if line.startswith("notifier: ")]
        assert len(lines) == 1 and "Traceback" not in err, (name, err)
    settings_err = results["settings"][2]
    assert "NOTIFY_TIMEOUT" in settings_err and "EMAIL_TRANSPORT" in settings_err
    assert (
        "cannot connect to Postgres at postgresql://postgres@127.0.0.1:1/test"
        in (results["postgres"][2])
    )
    assert "cannot connect to RabbitMQ" in results["rabbitmq"][2]
    assert "secret" not in results["rabbitmq"][2]


async def test_dead_letters_are_listed_with_their_reason_and_replayed_to_the_exchange(
    stack: Stack,
) -> None:
    env = notifier_env(stack)
    channel = await publisher_channel(stack.amqp)
    await declare_topology(channel, Topology.of(stack.topology))
    event = completed_run()
    message = encode_event(event)
    message.headers = {
        **(message.headers or {}),
        REASON_HEADER: "notifier: database unreachable 50 times",
        "x-original-routing-key": routing_key(event),
    }
    await channel.default_exchange.publish(
        message, dead_letter_queue(stack.topology.notifier_queue), mandatory=True
    )

    code, out, err = await run(env, "dead-letters", "list")
    assert code == 0, err
    [header, row] = out.splitlines()
    assert row.split("\t")[:2] == [str(event.event_id), "weekly-gvs-recalculation.job.finished"]
    assert "database unreachable 50 times" in row
    assert err.strip() == f"1 dead letter(s) in {dead_letter_queue(stack.topology.notifier_queue)}"

    code, _, err = await run(env, "dead-letters", "replay", "--all")
    assert code == 0, err
    [back] = await collect(await channel.get_queue(stack.topology.notifier_queue), 1)
    assert parse_event(back.body) == event
    assert REASON_HEADER not in (back.headers or {})
    dead = await channel.declare_queue(
        dead_letter_queue(stack.topology.notifier_queue), passive=True
    )
    assert dead.declaration_result.message_count == 0
