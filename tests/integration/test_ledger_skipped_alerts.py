"""An alert whose channel is not configured is shown ``skipped`` with its reason, never failed.

The notifier's NotificationSkipped goes over the real broker to the ledger's consumer and into
Postgres; the API and the pages read it back.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
from aio_pika.abc import AbstractRobustConnection

from chassis.broker import declare_topology
from chassis.topology import Topology
from contracts.events import (
    Event,
    JobFinished,
    JobFinishedPayload,
    JobStarted,
    JobStartedPayload,
    NotificationSent,
    NotificationSentPayload,
    NotificationSkipped,
    NotificationSkippedPayload,
)
from contracts.topology import BrokerNames
from tests.support.broker import eventually
from tests.support.ledger import JOB_NAME, consuming, publish
from tests.support.ledger_web import Ledger, get_json, log_in, page

STARTED = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
NO_KEY = "RESEND_API_KEY is not set"


def finished_run_with_alerts(job_id: uuid.UUID) -> list[Event]:
    """A completed run whose email was skipped (no Resend key) and whose Slack alert was sent."""
    done = STARTED + timedelta(minutes=5)
    return [
        JobStarted(
            job_id=job_id,
            job_name=JOB_NAME,
            occurred_at=STARTED,
            payload=JobStartedPayload(daos_total=0, trigger="cron", scope="all"),
        ),
        JobFinished(
            job_id=job_id,
            job_name=JOB_NAME,
            sequence=1,
            occurred_at=done,
            payload=JobFinishedPayload(
                status="completed",
                daos_total=0,
                daos_processed=0,
                daos_failed=0,
                duration_ms=300_000,
                cache_invalidated=True,
                scope="all",
            ),
        ),
        NotificationSkipped(
            job_id=job_id,
            job_name=JOB_NAME,
            occurred_at=done + timedelta(seconds=1),
            payload=NotificationSkippedPayload(channel="email", kind="success", reason=NO_KEY),
        ),
        NotificationSent(
            job_id=job_id,
            job_name=JOB_NAME,
            occurred_at=done + timedelta(seconds=2),
            payload=NotificationSentPayload(
                channel="slack", kind="warning", attempts=1, provider_id=None
            ),
        ),
    ]


async def test_a_skipped_alert_is_skipped_with_its_reason_on_the_api_and_the_pages(
    pool: asyncpg.Pool,
    amqp: AbstractRobustConnection,
    topology: BrokerNames,
    ledger: Ledger,
    http: aiohttp.ClientSession,
) -> None:
    await declare_topology(await amqp.channel(), Topology.of(topology))
    job_id = uuid.uuid4()
    async with consuming(pool, amqp, topology):
        await publish(amqp, topology, finished_run_with_alerts(job_id))

        async def notifications() -> list[dict[str, Any]]:
            _, body = await get_json(http, f"{ledger.url}/api/admin/job-logs?id={job_id}")
            return list(body.get("data", [{}])[0].get("notifications", []))

        found = await eventually(notifications, lambda n: len(n) == 2)
    assert found == [
        {
            "channel": "email",
            "kind": "success",
            "state": "skipped",
            "attempts": 0,
            "providerId": None,
            "error": None,
            "reason": NO_KEY,
            "occurredAt": "2026-03-02T00:05:01.000Z",
        },
        {
            "channel": "slack",
            "kind": "warning",
            "state": "sent",
            "attempts": 1,
            "providerId": None,
            "error": None,
            "reason": None,
            "occurredAt": "2026-03-02T00:05:02.000Z",
        },
    ]

    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        await log_in(browser, ledger.url)
        _, detail = await page(browser, f"{ledger.url}/admin/jobs/{job_id}")
        _, history = await page(browser, f"{ledger.url}/admin/jobs")
    table = detail.split('id="notifications"', 1)[1].split("</table>", 1)[0]
    assert '<span class="badge skipped">skipped</span>' in table
    assert f"not sent: {NO_KEY}" in table
    assert "failed" not in table
    assert f'title="success via email: {NO_KEY}">email skipped</span>' in history
