"""What a run is compared with: the drop baseline and the recovery, across a sequence of runs.

Real RabbitMQ and Postgres, Resend and Slack as loopback fakes. Each outcome is published and
settled before the next, as weeks pass; the tests assert the exact emails (subject and body)
and Slack messages the admin got for the whole sequence, and that nothing else was sent.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aio_pika.abc import AbstractChannel

from contracts import JobAbandoned, JobAbandonedPayload, JobFinished
from notifier.history import OutcomeEvent
from tests.harness.stack import Stack
from tests.support.broker import eventually
from tests.support.fake_resend import FakeResend
from tests.support.fake_slack import FakeSlack
from tests.support.notifier_harness import (
    deliveries,
    publish,
    running_notifier,
    scoped,
)
from tests.support.outcomes import JOB_NAME, job_finished

WEEK_1 = datetime(2026, 1, 5, 0, 5, tzinfo=UTC)
RETRY = WEEK_1 + timedelta(days=1)
WEEK_2 = WEEK_1 + timedelta(days=7)
DROP = (
    "Only 30 DAOs were scored, 40% fewer than the 50 of the last completed run of all DAOs: "
    "DAOs may be missing from the rankings."
)
ABANDONED_SETBACK = (
    "The job has recovered: the previous run was abandoned (it stopped reporting progress), "
    "and this one completed."
)


def completed(daos: int, at: datetime) -> JobFinished:
    """A run in which all ``daos`` were scored in 1m, finished at ``at``; its scope unset."""
    return job_finished(
        "completed", daos, daos, duration_ms=60_000, cache_invalidated=True, occurred_at=at
    )


async def outcome_settled(
    stack: Stack, channel: AbstractChannel, event: OutcomeEvent
) -> list[dict[str, Any]]:
    """Publish ``event`` and wait until its records exist and none is pending; return them."""
    await publish(channel, stack.topology, event)

    async def mine() -> list[dict[str, Any]]:
        records = await deliveries(stack.database_url, stack.schema)
        return [r for r in records if r["job_id"] == event.job_id]

    return await eventually(mine, lambda rs: bool(rs) and all(r["state"] != "pending" for r in rs))


async def all_consumed(stack: Stack, events: int) -> None:
    """Wait until ``events`` distinct events are recorded and the queue holds nothing ready
    (duplicates included); the notifier's drain then finishes what it has in hand."""
    conn = await asyncpg.connect(stack.database_url)
    try:
        await eventually(
            lambda: conn.fetchval(f'SELECT count(*) FROM "{stack.schema}".processed_events'),
            lambda n: n == events,
        )
    finally:
        await conn.close()

    async def ready() -> int:
        async with await stack.amqp.channel() as channel:
            queue = await channel.declare_queue(stack.topology.notifier_queue, passive=True)
        return int(queue.declaration_result.message_count or 0)

    await eventually(ready, lambda n: n == 0)


def emails(resend: FakeResend) -> list[tuple[str, str]]:
    """(idempotency key, subject) of every email Resend got, in order."""
    return [(r.header("Idempotency-Key") or "", r.json["subject"]) for r in resend.requests]


async def test_a_retry_is_no_drop_and_the_next_week_is_measured_against_the_last_full_one(
    stack: Stack,
    resend: FakeResend,
    slack: FakeSlack,
) -> None:
    settings = stack.notifier_settings(resend=resend, slack=slack)
    week_1 = scoped(completed(50, WEEK_1), "all")
    retry = scoped(completed(3, RETRY), "subset")
    week_2 = scoped(completed(30, WEEK_2), "all")
    async with running_notifier(settings):
        channel = await stack.amqp.channel()
        for event in (week_1, retry, week_2):
            await outcome_settled(stack, channel, event)

    assert emails(resend) == [
        (f"{week_1.job_id}/success", "✅ Weekly GVS Recalculation completed: 50/50 DAOs in 1m"),
        (f"{retry.job_id}/success", "✅ Weekly GVS Recalculation completed: 3/3 DAOs in 1m"),
        (
            f"{week_2.job_id}/warning",
            "⚠️ Weekly GVS Recalculation completed with warnings: 30/30 DAOs",
        ),
    ]
    retry_email = resend.requests[1].json
    assert (
        "fewer than" not in retry_email["text"] and "Check the rankings" not in retry_email["html"]
    )
    assert f"- {DROP}" in resend.requests[2].json["text"]
    assert DROP in resend.requests[2].json["html"]
    # Slack only hears of the real drop.
    assert len(slack.requests) == 1
    assert str(week_2.job_id) in str(slack.messages[0])
    assert DROP in slack.message_text(0)


async def test_a_run_of_unknown_scope_is_neither_checked_nor_taken_as_the_baseline(
    stack: Stack,
    resend: FakeResend,
) -> None:
    settings = stack.notifier_settings(resend=resend)
    week_1 = scoped(completed(50, WEEK_1), "all")
    # From a producer that does not say what it covered: 5 would be a drop from 50, and 100
    # would make the next week's 50 one.
    unknown_small = scoped(completed(5, RETRY), None)
    unknown_big = scoped(completed(100, RETRY + timedelta(days=1)), None)
    week_2 = scoped(completed(50, WEEK_2), "all")
    async with running_notifier(settings):
        channel = await stack.amqp.channel()
        for event in (week_1, unknown_small, unknown_big, week_2):
            await outcome_settled(stack, channel, event)

    assert [key for key, _ in emails(resend)] == [
        f"{week_1.job_id}/success",
        f"{unknown_small.job_id}/success",
        f"{unknown_big.job_id}/success",
        f"{week_2.job_id}/success",
    ]


async def test_a_completed_run_after_an_abandoned_one_is_recovered_once_however_delivered(
    stack: Stack,
    resend: FakeResend,
    slack: FakeSlack,
) -> None:
    settings = stack.notifier_settings(resend=resend, slack=slack)
    dead = abandoned(WEEK_1)
    week_2 = scoped(completed(50, WEEK_2), "all")
    republished = week_2.model_copy(update={"event_id": uuid.uuid4()})
    async with running_notifier(settings):
        channel = await stack.amqp.channel()
        await outcome_settled(stack, channel, dead)
        await outcome_settled(stack, channel, week_2)
        for event in (week_2, republished, week_2):
            await publish(channel, stack.topology, event)
        await all_consumed(stack, 3)
    records = await deliveries(stack.database_url, stack.schema)

    assert sorted(
        (r["channel"], r["kind"], r["state"]) for r in records if r["job_id"] == week_2.job_id
    ) == [
        ("email", "recovered", "sent"),
        ("slack", "recovered", "sent"),
    ]
    assert emails(resend) == [
        (
            f"{dead.job_id}/abandoned",
            "🚨 ChainSights Alert: Weekly GVS Recalculation abandoned (no progress for 30m)",
        ),
        (f"{week_2.job_id}/recovered", "✅ Weekly GVS Recalculation recovered: 50/50 DAOs in 1m"),
    ]
    assert ABANDONED_SETBACK in resend.requests[1].json["text"]
    assert ABANDONED_SETBACK in resend.requests[1].json["html"]
    assert len(slack.requests) == 2
    assert "The previous run was abandoned" in slack.message_text(1)


async def test_a_late_job_finished_of_an_abandoned_job_still_gets_its_own_email(
    stack: Stack,
    resend: FakeResend,
) -> None:
    settings = stack.notifier_settings(resend=resend)
    late = scoped(completed(50, WEEK_1 + timedelta(hours=2)), "all")
    dead = abandoned(WEEK_1 + timedelta(hours=1), job_id=late.job_id)
    second_call = dead.model_copy(update={"event_id": uuid.uuid4()})
    async with running_notifier(settings):
        channel = await stack.amqp.channel()
        await outcome_settled(stack, channel, dead)
        await outcome_settled(stack, channel, late)
        # The same job called abandoned again under another event id: no new outcome.
        await publish(channel, stack.topology, second_call)
        await publish(channel, stack.topology, late)
        await all_consumed(stack, 3)

    assert [key for key, _ in emails(resend)] == [
        f"{late.job_id}/abandoned",
        f"{late.job_id}/success",
    ]


def abandoned(at: datetime, *, job_id: uuid.UUID | None = None) -> JobAbandoned:
    """A run called abandoned at ``at``: its last event came 30 minutes earlier."""
    return JobAbandoned(
        job_id=job_id or uuid.uuid4(),
        job_name=JOB_NAME,
        occurred_at=at,
        payload=JobAbandonedPayload(last_event_at=at - timedelta(minutes=30), stale_after_s=1800),
    )
