"""A missed schedule slot is in the history: the API, the stats, the pages and its alert's link.

The slot is judged missed by the real watchdog (so the job id is the one the notifier's alert
links to), its deliveries are folded from the notifier's events, and everything is read back
through the served app.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
import pytest

from contracts.events import (
    Event,
    NotificationFailed,
    NotificationFailedPayload,
    NotificationSent,
    NotificationSentPayload,
)
from contracts.topology import BrokerNames
from job_ledger.recording import record_events
from job_ledger.watchdog import Watchdog, missed_ids
from tests.support.ledger_web import (
    JOB_LOG_STORY_FIELDS,
    NOW,
    Ledger,
    get_json,
    insert_job,
    log_in,
    page,
)

JOB_NAME = "weekly-gvs-recalculation"
SLOT = datetime(2025, 12, 22, 0, 0, tzinfo=UTC)  # the Monday slot of NOW (12:00 that day)
SENTENCE = "No run started within 1h of the slot scheduled for 2025-12-22 00:00 UTC."


class CaughtUp:
    async def wait_reason(self) -> str | None:
        return None


def watchdog(pool: asyncpg.Pool, topology: BrokerNames) -> Watchdog:
    return Watchdog(
        pool,
        topology.exchange,
        gate=CaughtUp(),
        job_name=JOB_NAME,
        schedule="0 0 * * 1",
        grace=timedelta(hours=1),
        stale_after=timedelta(hours=3),
        interval=timedelta(seconds=1),
        clock=lambda: NOW,
        watching_since=datetime(2000, 1, 1, tzinfo=UTC),
    )


@pytest.fixture
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def miss_the_slot(ledger: Ledger, topology: BrokerNames) -> uuid.UUID:
    """The watchdog misses NOW's slot; the notifier reports its email sent, its Slack failed."""
    assert (await watchdog(ledger.pool, topology).check_once()).missed == [SLOT]
    job_id, _ = missed_ids(JOB_NAME, SLOT)
    common = {"job_id": job_id, "job_name": JOB_NAME, "occurred_at": NOW}
    deliveries: list[Event] = [
        NotificationSent.model_validate(
            {
                **common,
                "payload": NotificationSentPayload(channel="email", kind="missed", attempts=1),
            }
        ),
        NotificationFailed.model_validate(
            {
                **common,
                "payload": NotificationFailedPayload(
                    channel="slack", kind="missed", attempts=5, error="HTTP 503"
                ),
            }
        ),
    ]
    async with ledger.pool.acquire() as conn, conn.transaction():
        await record_events(conn, deliveries)
    return job_id


async def test_the_missed_alerts_job_id_answers_with_the_storys_fields_outcome_and_slot(
    ledger: Ledger, topology: BrokerNames, http: aiohttp.ClientSession
) -> None:
    job_id = await miss_the_slot(ledger, topology)

    status, body = await get_json(http, f"{ledger.url}/api/admin/job-logs?id={job_id}")

    assert status == 200, body
    [job] = body["data"]
    assert tuple(f for f in job if f in JOB_LOG_STORY_FIELDS) == JOB_LOG_STORY_FIELDS
    story = {f: job[f] for f in JOB_LOG_STORY_FIELDS if f not in ("createdAt", "updatedAt")}
    assert story == {
        "id": str(job_id),
        "jobName": JOB_NAME,
        "startedAt": "2025-12-22T00:00:00.000Z",
        "completedAt": "2025-12-22T12:00:00.000Z",
        "status": "failed",
        "daosProcessed": 0,
        "daosTotal": 0,
        "errors": None,
        "durationMs": None,
        "cacheInvalidated": False,
    }
    assert (job["outcome"], job["scheduledFor"], job["trigger"], job["fatalError"]) == (
        "missed",
        "2025-12-22T00:00:00.000Z",
        "cron",
        SENTENCE,
    )
    assert job["progress"] is None
    assert [(n["channel"], n["kind"], n["state"]) for n in job["notifications"]] == [
        ("email", "missed", "sent"),
        ("slack", "missed", "failed"),
    ]


async def test_a_missed_slot_is_listed_and_counted_as_a_failure_without_a_duration(
    ledger: Ledger, topology: BrokerNames, http: aiohttp.ClientSession
) -> None:
    completed = await insert_job(ledger.pool, started_at=NOW - timedelta(days=7))
    job_id = await miss_the_slot(ledger, topology)

    status, body = await get_json(http, f"{ledger.url}/api/admin/job-logs")
    assert status == 200
    assert [(j["id"], j["outcome"]) for j in body["data"]] == [
        (str(job_id), "missed"),
        (str(completed), "completed"),
    ]
    status, body = await get_json(http, f"{ledger.url}/api/admin/job-stats")
    assert status == 200
    stats = body["data"]
    assert (stats["runs"], stats["completed"], stats["failed"], stats["runsMissed"]) == (2, 1, 1, 1)
    assert (stats["failureRate"], stats["durationP50Ms"], stats["durationP95Ms"]) == (
        0.5,
        332_000,
        332_000,
    )


async def test_the_pages_show_the_missed_slot_its_deliveries_and_the_schedule(
    ledger: Ledger, topology: BrokerNames, browser: aiohttp.ClientSession
) -> None:
    job_id = await miss_the_slot(ledger, topology)
    await log_in(browser, ledger.url)

    status, html = await page(browser, f"{ledger.url}/admin/jobs/{job_id}")
    assert status == 200, html
    assert '<dd id="outcome">missed</dd>' in html
    assert '<dd id="scheduled-for">2025-12-22 00:00:00 UTC</dd>' in html
    assert SENTENCE in html
    table = html.split('id="notifications"', 1)[1].split("</table>", 1)[0]
    assert table.count("<tr>") == 3 and "HTTP 503" in table, table

    status, html = await page(browser, f"{ledger.url}/admin/jobs")
    assert status == 200
    row = html.split(f'<tr data-job-id="{job_id}">', 1)[1].split("</tr>", 1)[0]
    assert '<span class="badge failed">missed</span>' in row
    schedule = html.split('id="schedule">', 1)[1].split("</p>", 1)[0]
    assert "next slot <b>2025-12-29 00:00:00 UTC</b>" in schedule
    assert "last checked slot 2025-12-22 00:00:00 UTC" in schedule
    assert '<span class="badge failed">missed</span>' in schedule
    assert "1 failed (1 missed)" in html


async def test_the_schedule_line_says_when_the_last_slot_was_met(
    ledger: Ledger, topology: BrokerNames, browser: aiohttp.ClientSession
) -> None:
    await log_in(browser, ledger.url)
    _, html = await page(browser, f"{ledger.url}/admin/jobs")
    assert "no slot checked yet" in html.split('id="schedule">', 1)[1].split("</p>", 1)[0]

    await insert_job(ledger.pool, started_at=SLOT + timedelta(minutes=3))
    assert (await watchdog(ledger.pool, topology).check_once()).started == [SLOT]
    _, html = await page(browser, f"{ledger.url}/admin/jobs")
    schedule = html.split('id="schedule">', 1)[1].split("</p>", 1)[0]
    assert "last checked slot 2025-12-22 00:00:00 UTC" in schedule
    assert '<span class="badge completed">met</span>' in schedule
