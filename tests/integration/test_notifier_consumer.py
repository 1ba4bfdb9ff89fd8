"""Consuming: exactly one alert per outcome, dead letters with a reason, nothing configured,
and a consumer the broker lost attached again by the notifier itself.

Real RabbitMQ and Postgres, fake providers. Duplicates are delivered for real (the same
message published three times), bad messages are really published, the consumer is really
cancelled on the broker, and each test checks what the providers received and what the
tables and queues hold afterwards.
"""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
from aio_pika.abc import AbstractRobustConnection

from chassis.deadletter import REASON_HEADER
from chassis.topology import dead_letter_queue
from contracts import (
    JobFinished,
    JobMissed,
    JobMissedPayload,
    NotificationSent,
    NotificationSentPayload,
    NotificationSkipped,
    encode_event,
    event_body,
    parse_event,
)
from contracts.events import utc_now
from notifier.service import Notifier
from tests.harness.stack import Stack
from tests.support.broker import collect, eventually, tap_exchange
from tests.support.fake_resend import FakeResend
from tests.support.fake_slack import FakeSlack
from tests.support.notifier_harness import (
    publish,
    publish_raw,
    running_notifier,
    settled,
)
from tests.support.outcomes import JOB_NAME, job_finished


def failed_run() -> JobFinished:
    return job_finished("failed", 10, 2, duration_ms=5000, cache_invalidated=False)


async def test_the_same_job_finished_delivered_three_times_sends_one_email_and_one_slack(
    stack: Stack,
    resend: FakeResend,
    slack: FakeSlack,
) -> None:
    settings = stack.notifier_settings(resend=resend, slack=slack)
    event = failed_run()
    # The same job finishing again under another event id (a republish) is no new outcome.
    republished = event.model_copy(update={"event_id": uuid.uuid4()})
    async with running_notifier(settings):
        channel = await stack.amqp.channel()
        for _ in range(3):
            await publish(channel, stack.topology, event)
        await publish(channel, stack.topology, republished)
        records = await settled(stack.database_url, stack.schema, 2)
        conn = await asyncpg.connect(stack.database_url)
        try:
            # All four messages consumed (none waiting, none unacked) before counting.
            await eventually(
                lambda: conn.fetchval(f'SELECT count(*) FROM "{stack.schema}".processed_events'),
                lambda n: n == 2,
            )
        finally:
            await conn.close()
        queue = await channel.declare_queue(stack.topology.notifier_queue, passive=True)
        assert queue.declaration_result.message_count == 0

    assert len(resend.requests) == 1 and len(slack.requests) == 1
    assert resend.requests[0].header("Idempotency-Key") == f"{event.job_id}/failure"
    assert sorted((r["channel"], r["kind"], r["state"]) for r in records) == [
        ("email", "failure", "sent"),
        ("slack", "failure", "sent"),
    ]


async def test_bad_messages_are_dead_lettered_with_the_reason_and_consuming_goes_on(
    stack: Stack,
    resend: FakeResend,
) -> None:
    settings = stack.notifier_settings(resend=resend)
    good = failed_run()
    future_version = orjson.loads(event_body(failed_run()))
    future_version["schema_version"] = 2
    stray = NotificationSent(
        job_id=uuid.uuid4(),
        job_name=JOB_NAME,
        payload=NotificationSentPayload(channel="email", kind="success", attempts=1),
    )
    async with running_notifier(settings):
        channel = await stack.amqp.channel()
        await publish_raw(channel, stack.topology, b"{not json", f"{JOB_NAME}.job.finished")
        await publish_raw(
            channel, stack.topology, orjson.dumps(future_version), f"{JOB_NAME}.job.finished"
        )
        # A valid event under a routing key it does not belong to.
        exchange = await channel.get_exchange(stack.topology.exchange)
        await exchange.publish(encode_event(stray), f"{JOB_NAME}.job.missed", mandatory=True)
        await publish(channel, stack.topology, good)
        records = await settled(stack.database_url, stack.schema, 2)
        dead = await collect(
            await channel.get_queue(dead_letter_queue(stack.topology.notifier_queue)), 3
        )

    # Messages are handled concurrently (prefetch), so the dead letters may come in any order.
    reasons = {m.body: str(m.headers[REASON_HEADER]) for m in dead}
    assert reasons[b"{not json"].startswith("invalid JSON")
    assert reasons[orjson.dumps(future_version)] == (
        "unknown schema_version 2; this consumer knows 1"
    )
    assert reasons[event_body(stray)] == (
        "the notifier does not handle NotificationSent (bound by mistake?)"
    )
    assert [(r["job_id"], r["channel"]) for r in records if r["state"] == "sent"] == [
        (good.job_id, "email")
    ]


async def test_without_resend_key_or_slack_url_alerts_end_skipped_with_the_reason_not_failed(
    stack: Stack,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = stack.notifier_settings()
    tap = await tap_exchange(stack.amqp, stack.topology, "#.notification.*")
    first = failed_run()
    later = JobMissed(
        job_id=uuid.uuid4(),
        job_name=JOB_NAME,
        payload=JobMissedPayload(scheduled_for=utc_now(), grace_s=3600),
    )
    with caplog.at_level("INFO"):
        async with running_notifier(settings) as notifier, aiohttp.ClientSession() as http:
            channel = await stack.amqp.channel()
            await publish(channel, stack.topology, first)
            await settled(stack.database_url, stack.schema, 2)
            await publish(channel, stack.topology, later)
            records = await settled(stack.database_url, stack.schema, 4)
            assert await notifier.consumer.attachment.problem() is None
            # One outcome event per record: had any record failed, its event would be here.
            events = [parse_event(m.body) for m in await collect(tap, 4)]
            async with http.get(f"http://127.0.0.1:{notifier.port}/metrics") as response:
                metrics = await response.text()

    assert {
        (r["job_id"], r["channel"], r["state"], r["attempts"], r["last_error"], r["reason"])
        for r in records
    } == {
        (first.job_id, "email", "skipped", 0, None, "RESEND_API_KEY is not set"),
        (first.job_id, "slack", "skipped", 0, None, "SLACK_WEBHOOK_URL is not set"),
        (later.job_id, "email", "skipped", 0, None, "RESEND_API_KEY is not set"),
        (later.job_id, "slack", "skipped", 0, None, "SLACK_WEBHOOK_URL is not set"),
    }
    # The admin still learns that no alert went out, and why: a NotificationSkipped per
    # record, and no NotificationFailed (nothing was tried, nothing failed).
    skipped = [e for e in events if isinstance(e, NotificationSkipped)]
    assert len(skipped) == 4, events
    assert {(e.job_id, e.payload.channel, e.payload.kind, e.payload.reason) for e in skipped} == {
        (first.job_id, "email", "failure", "RESEND_API_KEY is not set"),
        (first.job_id, "slack", "failure", "SLACK_WEBHOOK_URL is not set"),
        (later.job_id, "email", "missed", "RESEND_API_KEY is not set"),
        (later.job_id, "slack", "missed", "SLACK_WEBHOOK_URL is not set"),
    }
    assert 'notifier_notifications_total{channel="email",kind="missed",state="skipped"}' in metrics
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert sum("RESEND_API_KEY is not set" in w for w in warnings) == 1
    assert sum("SLACK_WEBHOOK_URL is not set" in w for w in warnings) == 1
    infos = [r.getMessage() for r in caplog.records if r.levelname == "INFO"]
    assert sum("alert skipped" in line for line in infos) == 4


async def test_health_readiness_and_metrics_describe_the_running_notifier(
    stack: Stack,
    resend: FakeResend,
    slack: FakeSlack,
) -> None:
    settings = stack.notifier_settings(resend=resend, slack=slack)
    async with running_notifier(settings) as notifier, aiohttp.ClientSession() as http:
        await publish(await stack.amqp.channel(), stack.topology, failed_run())
        await settled(stack.database_url, stack.schema, 2)
        ready = await readiness(http, notifier)
        async with http.get(f"http://127.0.0.1:{notifier.port}/metrics") as response:
            metrics = await response.text()

    assert ready == (
        200,
        {"status": "ready", "checks": {"database": "ok", "broker": "ok", "consumer": "ok"}},
    )
    assert 'notifier_notifications_total{channel="email",kind="failure",state="sent"}' in metrics
    assert 'notifier_notifications_total{channel="slack",kind="failure",state="sent"}' in metrics
    assert 'notifier_provider_latency_seconds_count{channel="email",outcome="ok"}' in metrics
    assert "notifier_retries_total" in metrics


async def readiness(http: aiohttp.ClientSession, notifier: Notifier) -> tuple[int, Any]:
    async with http.get(f"http://127.0.0.1:{notifier.port}/readyz") as response:
        return response.status, await response.json()


async def broker_consumers(amqp: AbstractRobustConnection, queue: str) -> int:
    """Consumers the broker counts on ``queue`` (a passive declare, as an operator would ask)."""
    async with await amqp.channel() as channel:
        declared = await channel.declare_queue(queue, passive=True)
    return declared.declaration_result.consumer_count or 0


async def lose_consumer(
    notifier: Notifier, http: aiohttp.ClientSession
) -> tuple[str, tuple[int, Any]]:
    """Cancel the notifier's consumer on the broker; return its tag and the readiness seen then.

    What a broker restart has been seen to leave behind: the channel up, no consumer. Should
    the watch re-attach between the cancel and the readiness request (a few milliseconds of
    its 5 s interval), the readiness seen is of the new consumer: cancel that one instead.
    """
    attachment = notifier.consumer.attachment
    for _ in range(3):
        tag, channel = attachment.consumer_tag, attachment.channel
        assert tag is not None and channel is not None
        await (await channel.get_underlay_channel()).basic_cancel(tag)
        seen = await readiness(http, notifier)
        if attachment.consumer_tag == tag:
            return tag, seen
    raise AssertionError("the watch re-attached before readiness could be read, three times")


async def test_a_consumer_the_broker_lost_fails_readiness_and_is_attached_again_by_itself(
    stack: Stack,
    resend: FakeResend,
) -> None:
    settings = stack.notifier_settings(resend=resend)
    queue = stack.topology.notifier_queue
    before, after = failed_run(), failed_run()
    async with running_notifier(settings) as notifier, aiohttp.ClientSession() as http:
        channel = await stack.amqp.channel()
        await publish(channel, stack.topology, before)
        await settled(stack.database_url, stack.schema, 2)  # email sent, Slack skipped

        lost, (status, body) = await lose_consumer(notifier, http)
        assert await broker_consumers(stack.amqp, queue) == 0
        assert status == 503
        assert body["checks"]["consumer"] == f"consumer {lost} is not attached to {queue}"

        # Nothing here re-attaches it: the notifier's own watch must.
        await eventually(
            lambda: readiness(http, notifier), lambda seen: seen[0] == 200, timeout_s=30
        )
        assert notifier.consumer.attachment.consumer_tag != lost
        assert await broker_consumers(stack.amqp, queue) == 1
        await publish(channel, stack.topology, after)
        records = await settled(stack.database_url, stack.schema, 4)

    assert [r.header("Idempotency-Key") for r in resend.requests] == [
        f"{before.job_id}/failure",
        f"{after.job_id}/failure",
    ]
    assert {(r["job_id"], r["state"]) for r in records if r["channel"] == "email"} == {
        (before.job_id, "sent"),
        (after.job_id, "sent"),
    }
