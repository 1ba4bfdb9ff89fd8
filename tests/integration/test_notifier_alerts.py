"""Every decision row, end to end: an event on the exchange → the request the provider got.

Real RabbitMQ and Postgres; Resend and Slack are loopback fakes that record each request.
Each case asserts on what the admin reads: subject, recipients, the green, red or yellow
styling, the counts, the DAO names and errors, and the link to the job's admin page.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contracts import (
    JobAbandoned,
    JobAbandonedPayload,
    JobMissed,
    JobMissedPayload,
)
from notifier.history import OutcomeEvent
from tests.harness.stack import Stack
from tests.support.broker import eventually
from tests.support.fake_resend import FakeResend, Recorded
from tests.support.fake_slack import FakeSlack
from tests.support.notifier_harness import (
    deliveries,
    publish,
    running_notifier,
    scoped,
)
from tests.support.outcomes import JOB_NAME, job_finished

AT = datetime(2026, 1, 5, 0, 5, 32, tzinfo=UTC)
GREEN, RED, YELLOW = "#15803d", "#b91c1c", "#eab308"
ADMIN = "https://admin.example.test/admin/jobs/"

# Each run of the table took 5m 32s and finished at AT, unless its case says otherwise.
finished = functools.partial(
    job_finished, duration_ms=332_000, cache_invalidated=True, occurred_at=AT
)


FAILURES = (
    ("Uniswap", "Snapshot hub timed out after 3 attempts"),
    ("Aave DAO", "HTTP 502 from the hub"),
    ("ENS", "no proposals in 90 days & no space"),
)


def abandoned(at: datetime) -> JobAbandoned:
    """A run called abandoned at ``at``: its last event came 30 minutes earlier."""
    return JobAbandoned(
        job_id=uuid.uuid4(),
        job_name=JOB_NAME,
        occurred_at=at,
        payload=JobAbandonedPayload(last_event_at=at - timedelta(minutes=30), stale_after_s=1800),
    )


def missed(at: datetime) -> JobMissed:
    """The slot an hour before ``at`` missed, seen at ``at`` (an hour of grace)."""
    return JobMissed(
        job_id=uuid.uuid4(),
        job_name=JOB_NAME,
        occurred_at=at,
        payload=JobMissedPayload(scheduled_for=at - timedelta(hours=1), grace_s=3600),
    )


@dataclass
class Case:
    event: OutcomeEvent
    email_kind: str
    subject: str
    colour: str
    html_has: list[str]
    slack_kind: str | None = None
    slack_has: list[str] = field(default_factory=list)
    before: list[OutcomeEvent] = field(default_factory=list)
    revalidation: bool = False


def cases() -> dict[str, Case]:
    return {
        "completed: green success email, no Slack": Case(
            finished("completed", 10, 10),
            "success",
            "✅ Weekly GVS Recalculation completed: 10/10 DAOs in 5m 32s",
            GREEN,
            ["10 of 10 DAOs were scored in 5m 32s", "2026-01-05 00:05:32 UTC"],
        ),
        "failed: red failure email with the DAOs, and Slack": Case(
            finished("failed", 5, 2, failures=FAILURES),
            "failure",
            "🚨 ChainSights Alert: Weekly GVS Recalculation failed (3 of 5 DAOs failed)",
            RED,
            [
                "Uniswap",
                "Snapshot hub timed out after 3 attempts",
                "Aave DAO",
                "HTTP 502",
                "no proposals in 90 days &amp; no space",
            ],
            "failure",
            [
                "*Failures:* 3 (60%)",
                "Uniswap",
                "Aave DAO",
                "no proposals in 90 days &amp; no space",
            ],
        ),
        "fatal error: red email naming it": Case(
            finished("failed", 10, 0, fatal_error="database is read-only"),
            "failure",
            "🚨 ChainSights Alert: Weekly GVS Recalculation failed with a fatal error "
            "(0/10 DAOs processed)",
            RED,
            ["database is read-only"],
            "failure",
            ["database is read-only"],
        ),
        "completed with over 20% failed: green email, Slack warning": Case(
            finished("completed", 10, 7, failures=FAILURES),
            "success",
            "✅ Weekly GVS Recalculation completed: 7/10 DAOs in 5m 32s",
            GREEN,
            ["Uniswap", "Aave DAO"],
            "warning",
            ["More than 20% of the DAOs failed", "*Failures:* 3 (30%)", "Uniswap"],
        ),
        "completed after a failed run: recovered email and Slack note": Case(
            finished("completed", 10, 10),
            "recovered",
            "✅ Weekly GVS Recalculation recovered: 10/10 DAOs in 5m 32s",
            GREEN,
            ["The job has recovered"],
            "recovered",
            ["The previous run failed; this one completed."],
            before=[
                finished("failed", 10, 0, fatal_error="boom", occurred_at=AT - timedelta(days=7))
            ],
        ),
        "DAO count fell over 20%: yellow warning email and Slack": Case(
            scoped(finished("completed", 7, 7), "all"),
            "warning",
            "⚠️ Weekly GVS Recalculation completed with warnings: 7/7 DAOs",
            YELLOW,
            ["Only 7 DAOs were scored, 30% fewer than the 10 of the last completed run of all"],
            "warning",
            ["Only 7 DAOs were scored, 30% fewer"],
            before=[
                scoped(finished("completed", 10, 10, occurred_at=AT - timedelta(days=7)), "all")
            ],
        ),
        "completed after an abandoned run: recovered email saying so": Case(
            finished("completed", 10, 10),
            "recovered",
            "✅ Weekly GVS Recalculation recovered: 10/10 DAOs in 5m 32s",
            GREEN,
            [
                "The job has recovered: the previous run was abandoned (it stopped reporting "
                "progress), and this one completed."
            ],
            "recovered",
            ["The previous run was abandoned (it stopped reporting progress); this one completed."],
            before=[abandoned(AT - timedelta(days=7))],
        ),
        "completed after a missed slot: recovered email saying so": Case(
            finished("completed", 10, 10),
            "recovered",
            "✅ Weekly GVS Recalculation recovered: 10/10 DAOs in 5m 32s",
            GREEN,
            [
                "The job has recovered: the last scheduled run was missed (it never started), "
                "and this one completed."
            ],
            "recovered",
            ["The last scheduled run was missed (it never started); this one completed."],
            before=[missed(AT - timedelta(days=7))],
        ),
        "no DAO scored (empty registry): warning": Case(
            scoped(finished("completed", 0, 0), "all"),
            "warning",
            "⚠️ Weekly GVS Recalculation completed with warnings: 0/0 DAOs",
            YELLOW,
            ["No DAO was scored (none was found to score): the rankings were not updated."],
            "warning",
            ["No DAO was scored"],
        ),
        "cache not revalidated while configured: warning": Case(
            finished("completed", 10, 10, cache_invalidated=False),
            "warning",
            "⚠️ Weekly GVS Recalculation completed with warnings: 10/10 DAOs",
            YELLOW,
            ["The rankings cache was not revalidated"],
            "warning",
            ["The rankings cache was not revalidated"],
            revalidation=True,
        ),
        "abandoned: red email and Slack": Case(
            abandoned(AT),
            "abandoned",
            "🚨 ChainSights Alert: Weekly GVS Recalculation abandoned (no progress for 30m)",
            RED,
            ["its last event arrived at 2026-01-04 23:35:32 UTC, and nothing followed for 30m"],
            "abandoned",
            ["*No event for:* 30m"],
        ),
        "missed: red email and Slack": Case(
            missed(AT),
            "missed",
            "🚨 ChainSights Alert: Weekly GVS Recalculation missed its 2026-01-04 23:05:32 UTC run",
            RED,
            ["A run was scheduled for 2026-01-04 23:05:32 UTC and had not started 1h later"],
            "missed",
            ["*Scheduled for:* 2026-01-04 23:05:32 UTC"],
        ),
    }


def by_key(requests: list[Recorded], key: str) -> Recorded:
    matching = [r for r in requests if r.header("Idempotency-Key") == key]
    assert len(matching) == 1, f"expected one request with key {key}, got {len(matching)}"
    return matching[0]


async def _wait_for_records(
    database_url: str, schema: str, event: OutcomeEvent, count: int | None
) -> list[dict[str, Any]]:
    """The event's records once they are all final (``count`` of them, if given)."""

    async def probe() -> list[dict[str, Any]]:
        rows = await deliveries(database_url, schema)
        return [r for r in rows if r["job_id"] == event.job_id]

    def done(rows: list[dict[str, Any]]) -> bool:
        return (
            bool(rows)
            and (count is None or len(rows) == count)
            and all(r["state"] != "pending" for r in rows)
        )

    return await eventually(probe, done)


@pytest.mark.parametrize("name", list(cases()))
async def test_each_outcome_reaches_the_providers_as_decided(
    stack: Stack,
    name: str,
    resend: FakeResend,
    slack: FakeSlack,
) -> None:
    case = cases()[name]
    revalidate = "https://site.example.test/api/revalidate" if case.revalidation else None
    settings = stack.notifier_settings(
        resend=resend,
        slack=slack,
        cache_revalidate_url=revalidate,
    )
    expected = 1 if case.slack_kind is None else 2
    async with running_notifier(settings):
        channel = await stack.amqp.channel()
        for earlier in case.before:
            # The previous run must be known before this one is decided.
            await publish(channel, stack.topology, earlier)
            await _wait_for_records(stack.database_url, stack.schema, earlier, None)
        await publish(channel, stack.topology, case.event)
        records = await _wait_for_records(stack.database_url, stack.schema, case.event, expected)

    assert {(r["channel"], r["kind"], r["state"]) for r in records} == {
        ("email", case.email_kind, "sent"),
        *([("slack", case.slack_kind, "sent")] if case.slack_kind else []),
    }
    email = by_key(resend.requests, f"{case.event.job_id}/{case.email_kind}")
    body = email.json
    assert email.header("Authorization") == f"Bearer {resend.api_key}"
    assert body["from"] == "ChainSights <alerts@example.test>"
    assert body["to"] == ["ops@example.test", "oncall@example.test"]
    assert body["subject"] == case.subject
    # The accent colour of the whole email: green for every completed run, red otherwise;
    # a warning adds the yellow box to the green email.
    accent = RED if case.colour == RED else GREEN
    assert f"border-top:6px solid {accent}" in body["html"]
    assert (f"border-left:6px solid {YELLOW}" in body["html"]) == (case.colour == YELLOW)
    assert f'href="{ADMIN}{case.event.job_id}"' in body["html"]
    for text in case.html_has:
        assert text in body["html"], text
    assert email.json["text"].strip()

    mine = [i for i, m in enumerate(slack.requests) if str(case.event.job_id) in str(m.json)]
    if case.slack_kind is None:
        assert mine == []
    else:
        assert len(mine) == 1
        text = slack.message_text(mine[0])
        assert f"<{ADMIN}{case.event.job_id}|View in Admin Dashboard>" in text
        for wanted in case.slack_has:
            assert wanted in text, wanted
