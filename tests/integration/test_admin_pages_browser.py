"""The admin pages in a real headless Chromium, against the real app and real rows in Postgres.

Logs in, reads the history and a failed job as the admin would, retries the failed DAOs and
sees the outcome; saves screenshots (desktop and phone width) under ``var/screenshots/``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from tests.support.cdp import Page, chromium
from tests.support.ledger_web import (
    NOW,
    PASSWORD,
    Ledger,
    insert_event,
    insert_job,
    insert_notification,
)

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
EVIL = "<img src=x onerror=alert(1)>"

pytestmark = pytest.mark.browser


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    async with chromium() as tab:
        await tab.set_viewport(1280, 900)
        yield tab


async def seed(pool: asyncpg.Pool) -> dict[str, str]:
    """Twelve weekly runs: mostly green, one slow, one failed with an HTML DAO name, one running."""
    ids: dict[str, str] = {}
    for week in range(1, 11):
        job = await insert_job(
            pool,
            started_at=NOW - timedelta(days=7 * week),
            duration_ms=(900_000 if week == 6 else 300_000 + 9_000 * week),
            processed=12,
            total=12,
        )
        await insert_notification(pool, job, "email", "success", "sent", NOW)
    failed = await insert_job(
        pool,
        started_at=NOW - timedelta(days=2),
        status="failed",
        processed=4,
        total=12,
        duration_ms=420_000,
        trigger="manual",
        failures=[
            ("dao-evil", EVIL, "HTTP 502 from hub.snapshot.org"),
            ("dao-aave", "Aave", "HTTP 502 from hub.snapshot.org"),
            ("dao-lido", "Lido", "timeout after 30s"),
            *[(f"dao-{i}", f"DAO {i}", "timeout after 30s") for i in range(5)],
        ],
    )
    await insert_event(
        pool,
        failed,
        "JobStarted",
        0,
        NOW - timedelta(days=2),
        {"daos_total": 12, "trigger": "manual"},
    )
    await insert_event(
        pool,
        failed,
        "DaoFailed",
        1,
        NOW - timedelta(days=2) + timedelta(seconds=30),
        {
            "dao_id": "dao-evil",
            "dao_name": EVIL,
            "error": "HTTP 502 from hub.snapshot.org",
            "attempts": 3,
        },
    )
    await insert_notification(pool, failed, "email", "failure", "sent", NOW - timedelta(days=2))
    await insert_notification(
        pool,
        failed,
        "slack",
        "failure",
        "failed",
        NOW - timedelta(days=2),
        "HTTP 500 from hooks.slack.com",
    )
    running = await insert_job(
        pool, started_at=NOW - timedelta(seconds=120), status="running", processed=5, total=12
    )
    ids["failed"], ids["running"] = str(failed), str(running)
    return ids


async def test_the_admin_logs_in_reads_the_history_and_a_failed_job_and_retries_it(
    ledger: Ledger, page: Page
) -> None:
    ids = await seed(ledger.pool)

    # Not signed in: the history sends the browser to the login form.
    await page.navigate(f"{ledger.url}/admin/jobs")
    assert await page.evaluate("location.pathname") == "/admin/login"
    await page.fill("#password", "wrong")
    await page.click_and_wait("form.login button")
    assert await page.text("#login-error") == "Wrong password. Try again."
    await page.screenshot(SCREENSHOTS / "admin-login-wrong-password.png")
    await page.fill("#password", PASSWORD)
    await page.click_and_wait("form.login button")
    assert await page.evaluate("location.pathname") == "/admin/jobs"

    # The history: newest first, a badge per status, the chart with a bar per run, the stats.
    rows = await page.evaluate(
        "[...document.querySelectorAll('#runs tbody tr')].map(r =>"
        " [...r.querySelectorAll('td')].map(td => td.innerText.trim()))"
    )
    assert len(rows) == 12
    assert [r[0] for r in rows[:3]] == ["RUNNING", "FAILED", "COMPLETED"]
    assert rows[1][3:7] == ["4 of 12", "8", "manual", "EMAIL SENT SLACK FAILED"]
    badge_colours = await page.evaluate(
        "Object.fromEntries(['running','failed','completed'].map(s =>"
        " [s, getComputedStyle(document.querySelector('.badge.' + s)).backgroundColor]))"
    )
    assert badge_colours == {
        "running": "rgb(9, 105, 218)",
        "failed": "rgb(207, 34, 46)",
        "completed": "rgb(26, 127, 55)",
    }
    assert await page.evaluate("document.querySelectorAll('svg.chart rect.run-bar').length") == 12
    stats = await page.text("#stats")
    assert "Failure rate\n9.1%" in stats and "10 ok · 1 failed · 1 running" in stats
    await page.screenshot(SCREENSHOTS / "admin-jobs.png")
    await page.set_viewport(390, 844, mobile=True)
    await page.navigate(f"{ledger.url}/admin/jobs")
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    await page.screenshot(SCREENSHOTS / "admin-jobs-phone.png")
    await page.set_viewport(1280, 900)

    # The failed job, opened from the history like a person would.
    await page.navigate(f"{ledger.url}/admin/jobs")
    await page.click_and_wait(f"tr[data-job-id='{ids['failed']}'] a")
    assert await page.evaluate("location.pathname") == f"/admin/jobs/{ids['failed']}"
    assert await page.text("#status") == "FAILED"
    assert await page.text("#processed") == "4 of 12"
    assert await page.text("#failed") == "8"
    groups = await page.evaluate(
        "[...document.querySelectorAll('.failure-group')].map(g => ({"
        " head: g.querySelector('p').innerText,"
        " daos: [...g.querySelectorAll('.dao-name')].map(d => d.textContent)}))"
    )
    assert groups == [
        {"head": "6 DAOs · timeout after 30s", "daos": ["Lido", *[f"DAO {i}" for i in range(5)]]},
        {"head": "2 DAOs · HTTP 502 from hub.snapshot.org", "daos": [EVIL, "Aave"]},
    ]
    # The HTML in the DAO name is text on the page, not an element, and nothing ran.
    assert await page.evaluate("document.querySelectorAll('main img').length") == 0
    assert EVIL in await page.text("#timeline")
    assert page.dialogs == []
    notes = await page.text("#notifications")
    assert "HTTP 500 from hooks.slack.com" in notes
    await page.screenshot(SCREENSHOTS / "admin-job-failed.png")

    # Retry: a POST with the CSRF token, a redirect, and the request waiting for its answer.
    await page.click_and_wait("#retry-failed")
    [command] = ledger.published
    assert (command.trigger, command.job_name) == ("retry", "weekly-gvs-recalculation")
    assert command.dao_ids == ["dao-evil", "dao-aave", "dao-lido", *[f"dao-{i}" for i in range(5)]]
    assert await page.text("#run-request") == (
        f"Retry of 8 failed DAOs requested ({command.request_id}): waiting for the worker's"
        " answer. This page refreshes itself every 2 seconds."
    )
    assert await page.evaluate("location.search") == f"?request={command.request_id}"
    assert await page.evaluate("location.pathname") == f"/admin/jobs/{ids['failed']}"
    await page.screenshot(SCREENSHOTS / "admin-job-retried.png")

    # The running job shows its progress and refreshes itself.
    await page.navigate(f"{ledger.url}/admin/jobs/{ids['running']}")
    assert "5 of 12 DAOs done" in await page.text("#progress")
    assert await page.evaluate("document.querySelector('meta[http-equiv=refresh]').content") == "5"
    await page.screenshot(SCREENSHOTS / "admin-job-running.png")
    await page.set_viewport(390, 844, mobile=True)
    await page.navigate(f"{ledger.url}/admin/jobs/{ids['failed']}")
    await page.screenshot(SCREENSHOTS / "admin-job-failed-phone.png")
    assert page.dialogs == []
