"""Sending: retries, Retry-After, permanent errors, timeouts, escaping, the file transport.

Real RabbitMQ and Postgres; the providers are loopback fakes scripted per request. Every
final outcome is checked in the record and in the NotificationSent/Failed event published
on the exchange (read from a tap queue).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aio_pika.abc import AbstractQueue, AbstractRobustConnection

from contracts import (
    BrokerNames,
    JobFinished,
    NotificationFailed,
    NotificationSent,
    parse_event,
)
from notifier.config import Settings
from tests.harness.stack import Stack
from tests.support.broker import collect, tap_exchange
from tests.support.fake_resend import FakeResend, Reply, resend_error
from tests.support.fake_slack import FakeSlack, slack_error
from tests.support.notifier_harness import publish, running_notifier, settled
from tests.support.outcomes import job_finished


def failed_run(*failures: tuple[str, str]) -> JobFinished:
    return job_finished(
        "failed", 3, 3 - len(failures), failures=failures, duration_ms=1200, cache_invalidated=False
    )


def completed_run() -> JobFinished:
    return job_finished("completed", 2, 2, duration_ms=900, cache_invalidated=True)


@pytest.fixture
def settings(
    stack: Stack,
    resend: FakeResend,
    slack: FakeSlack,
) -> Settings:
    return stack.notifier_settings(resend=resend, slack=slack, notify_max_attempts=3)


@pytest.fixture
async def outcomes(amqp: AbstractRobustConnection, topology: BrokerNames) -> AbstractQueue:
    """A tap on the notifier's own events (declared with the topology, before any publish)."""
    return await tap_exchange(amqp, topology, "#.notification.*")


async def outcome_events(queue: AbstractQueue, count: int) -> list[Any]:
    return [parse_event(m.body) for m in await collect(queue, count)]


async def run_once(
    settings: Settings, amqp: AbstractRobustConnection, event: JobFinished, records: int
) -> list[dict[str, Any]]:
    async with running_notifier(settings):
        await publish(await amqp.channel(), settings.broker_names, event)
        return await settled(
            settings.database_url.get_secret_value(), settings.notifier_schema, records
        )


async def test_provider_500_twice_then_200_is_sent_on_the_third_attempt_with_one_key(
    settings: Settings,
    resend: FakeResend,
    amqp: AbstractRobustConnection,
    outcomes: AbstractQueue,
) -> None:
    resend.script(
        resend_error(500, "application_error", "internal"),
        resend_error(503, "application_error", "unavailable"),
    )
    event = completed_run()
    [record] = await run_once(settings, amqp, event, 1)

    assert (record["state"], record["attempts"], record["provider_id"]) == ("sent", 3, "email-1")
    keys = {r.header("Idempotency-Key") for r in resend.requests}
    assert len(resend.requests) == 3 and keys == {f"{event.job_id}/success"}
    [sent] = await outcome_events(outcomes, 1)
    assert isinstance(sent, NotificationSent)
    assert (sent.job_id, sent.payload.channel, sent.payload.kind) == (
        event.job_id,
        "email",
        "success",
    )
    assert (sent.payload.attempts, sent.payload.provider_id) == (3, "email-1")


async def test_a_429_with_retry_after_waits_about_that_long(
    settings: Settings, resend: FakeResend, amqp: AbstractRobustConnection
) -> None:
    resend.script(
        resend_error(429, "rate_limit_exceeded", "Too many requests", **{"Retry-After": "1"})
    )
    [record] = await run_once(settings, amqp, completed_run(), 1)

    assert (record["state"], record["attempts"]) == ("sent", 2)
    first, second = resend.requests
    # The backoff alone would be at most 50ms here: the wait is the provider's second.
    assert 0.9 <= second.at - first.at < 2.5


async def test_a_400_fails_at_once_keeping_the_providers_message(
    settings: Settings,
    resend: FakeResend,
    amqp: AbstractRobustConnection,
    outcomes: AbstractQueue,
) -> None:
    resend.script(resend_error(400, "validation_error", "Invalid `to` field: not an address"))
    event = completed_run()
    [record] = await run_once(settings, amqp, event, 1)

    assert (record["state"], record["attempts"]) == ("failed", 1)
    assert "Invalid `to` field: not an address" in record["last_error"]
    assert len(resend.requests) == 1
    [failed] = await outcome_events(outcomes, 1)
    assert isinstance(failed, NotificationFailed)
    assert failed.payload.attempts == 1
    assert "Invalid `to` field: not an address" in failed.payload.error


@pytest.mark.parametrize(
    ("reply", "retried"),
    [
        (resend_error(409, "concurrent_idempotent_requests", "same key in flight"), True),
        (resend_error(409, "invalid_idempotent_request", "key reused with another body"), False),
        (resend_error(429, "daily_quota_exceeded", "daily quota reached"), False),
        (resend_error(403, "invalid_api_key", "API key is invalid"), False),
        (Reply(drop=True), True),
    ],
    ids=["409-concurrent", "409-invalid", "429-quota", "403", "dropped-connection"],
)
async def test_resend_errors_are_retried_only_when_the_same_request_can_succeed(
    settings: Settings,
    resend: FakeResend,
    amqp: AbstractRobustConnection,
    reply: Reply,
    retried: bool,
) -> None:
    resend.script(reply)
    [record] = await run_once(settings, amqp, completed_run(), 1)

    if retried:
        assert (record["state"], record["attempts"], len(resend.requests)) == ("sent", 2, 2)
    else:
        assert (record["state"], record["attempts"], len(resend.requests)) == ("failed", 1, 1)
        assert reply.json["message"] in record["last_error"]


async def test_a_provider_that_never_answers_fails_after_the_bound_and_says_so(
    settings: Settings,
    resend: FakeResend,
    amqp: AbstractRobustConnection,
    outcomes: AbstractQueue,
) -> None:
    resend.script(Reply(hang=True), Reply(hang=True), Reply(hang=True))
    event = completed_run()
    [record] = await run_once(settings, amqp, event, 1)

    assert (record["state"], record["attempts"]) == ("failed", 3)
    assert record["last_error"] == "resend did not answer within 0.5s"
    assert len(resend.requests) == 3
    [failed] = await outcome_events(outcomes, 1)
    assert isinstance(failed, NotificationFailed)
    assert (failed.job_id, failed.payload.channel, failed.payload.attempts) == (
        event.job_id,
        "email",
        3,
    )
    assert failed.payload.error == "resend did not answer within 0.5s"


async def test_alerts_beyond_the_dispatchers_room_wait_for_a_slot_and_go_out_once(
    settings: Settings, resend: FakeResend, amqp: AbstractRobustConnection
) -> None:
    # The consumer claims records for at most 8 deliveries in flight (the dispatcher's
    # room); 8 hanging requests fill it, so the next jobs' records are left unclaimed and
    # the dispatcher claims them itself once a slot is free.
    room, jobs = 8, 12
    resend.script(*[Reply(hang=True)] * room)
    events = [completed_run() for _ in range(jobs)]
    async with running_notifier(settings):
        channel = await amqp.channel()
        for event in events:
            await publish(channel, settings.broker_names, event)
        records = await settled(
            settings.database_url.get_secret_value(), settings.notifier_schema, jobs
        )

    assert [r["state"] for r in records] == ["sent"] * jobs
    assert sorted(r["attempts"] for r in records) == [1] * (jobs - room) + [2] * room
    keys = [r.header("Idempotency-Key") or "" for r in resend.requests]
    assert len(keys) == jobs + room
    assert sorted(set(keys)) == sorted(f"{e.job_id}/success" for e in events)
    # Never more than `room` requests open: the 9th waited for the first timeouts (0.5s).
    first, ninth = resend.requests[0], resend.requests[room]
    assert len(set(keys[:room])) == room
    assert ninth.at - first.at >= 0.45


async def test_slack_retries_5xx_and_429_and_fails_at_once_on_its_plain_text_errors(
    settings: Settings, slack: FakeSlack, amqp: AbstractRobustConnection
) -> None:
    slack.script(
        slack_error(500, "internal_error"), slack_error(429, "rate_limited", **{"Retry-After": "0"})
    )
    first = failed_run(("A", "x"))
    async with running_notifier(settings):
        channel = await amqp.channel()
        await publish(channel, settings.broker_names, first)
        await settled(settings.database_url.get_secret_value(), settings.notifier_schema, 2)
        slack.script(slack_error(400, "invalid_payload"))
        second = failed_run(("B", "y"))
        await publish(channel, settings.broker_names, second)
        records = await settled(
            settings.database_url.get_secret_value(), settings.notifier_schema, 4
        )

    by_job = {(r["job_id"], r["channel"]): r for r in records}
    ok = by_job[(first.job_id, "slack")]
    assert (ok["state"], ok["attempts"], ok["last_error"]) == ("sent", 3, None)
    bad = by_job[(second.job_id, "slack")]
    assert (bad["state"], bad["attempts"]) == ("failed", 1)
    assert bad["last_error"] == "Slack answered 400: invalid_payload"
    assert len(slack.requests) == 4


async def test_names_and_errors_arrive_escaped_in_the_html_and_in_slack(
    settings: Settings, resend: FakeResend, slack: FakeSlack, amqp: AbstractRobustConnection
) -> None:
    event = failed_run(
        ("<img src=x onerror=alert(1)>", "</ul><script>alert(2)</script>"),
        ("Fish & <Chips>", "HTTP 500 <b>"),
    )
    await run_once(settings, amqp, event, 2)

    html = resend.emails[0]["html"]
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "&lt;/ul&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in html
    assert "Fish &amp; &lt;Chips&gt;" in html
    assert "<img" not in html and "<script" not in html and "</ul><" not in html
    text = slack.message_text(0)
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    assert "&lt;/ul&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in text
    assert "Fish &amp; &lt;Chips&gt;" in text
    assert "<img" not in text and "<script" not in text


async def test_the_file_transport_writes_html_text_and_headers(
    stack: Stack,
    tmp_path: Path,
) -> None:
    settings = stack.notifier_settings(
        email_transport="file",
        email_outbox_dir=tmp_path / "emails",
    )
    event = completed_run()
    records = await run_once(settings, stack.amqp, event, 1)

    assert [(r["channel"], r["state"]) for r in records] == [("email", "sent")]
    stem = tmp_path / "emails" / f"{event.job_id}-success"
    headers = json.loads(stem.with_suffix(".json").read_text())
    assert headers == {
        "from": "ChainSights <alerts@example.test>",
        "to": ["ops@example.test", "oncall@example.test"],
        "subject": "✅ Weekly GVS Recalculation completed: 2/2 DAOs in 900ms",
        "idempotency_key": f"{event.job_id}/success",
    }
    assert "border-top:6px solid #15803d" in stem.with_suffix(".html").read_text()
    text = stem.with_suffix(".txt").read_text()
    assert "2 of 2 DAOs were scored in 900ms." in text
    assert f"View in Admin Dashboard: https://admin.example.test/admin/jobs/{event.job_id}" in text
    assert records[0]["provider_id"] == str(stem.with_suffix(".html"))
