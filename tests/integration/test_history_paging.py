"""The whole history, a page at a time: ``before=`` cursors on the API and the history page.

Pages are cut by ``(started_at, id)``: runs that started at the same moment (or within the same
millisecond, which the API's ``startedAt`` cannot tell apart) straddle the pages' edges here on
purpose, so an order or a cursor that dropped the id or the microseconds would repeat or lose
rows. Real Postgres, the app served over loopback HTTP.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import aiohttp
import asyncpg
import pytest

from tests.support.ledger_web import (
    NOW,
    Ledger,
    get_json,
    insert_job,
    log_in,
    page,
    served_ledger,
)

RUNS = 250
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def cursor(moment: datetime, job_id: uuid.UUID) -> str:
    """A cursor as the API writes it: startedAt in microseconds since 1970, a comma, an id."""
    return f"{(moment - EPOCH) // timedelta(microseconds=1)},{job_id}"


async def insert_history(pool: asyncpg.Pool, runs: int = RUNS) -> list[str]:
    """Insert ``runs`` jobs, seven to a start time and some 100 µs apart; return their ids in
    the history's order (newest ``started_at`` first, then highest id)."""
    started: list[tuple[object, uuid.UUID]] = []
    for i in range(runs):
        moment = NOW - timedelta(minutes=i // 7, microseconds=100 * (i % 7 // 4))
        started.append((moment, await insert_job(pool, started_at=moment)))
    started.sort(key=lambda pair: (pair[0], pair[1]), reverse=True)
    return [str(job_id) for _, job_id in started]


async def walk(
    http: aiohttp.ClientSession, ledger: Ledger, query: str = ""
) -> AsyncIterator[dict[str, Any]]:
    """Yield every page of ``/api/admin/job-logs?<query>``, following ``meta.nextBefore``."""
    url = f"{ledger.url}/api/admin/job-logs?{query}"
    while True:
        status, body = await get_json(http, url)
        assert status == 200, body
        yield body
        next_before = body["meta"]["nextBefore"]
        if next_before is None:
            return
        url = f"{ledger.url}/api/admin/job-logs?{query}&before={quote(next_before)}"


def ids(body: dict[str, Any]) -> list[str]:
    data = body["data"]
    assert isinstance(data, list)
    return [job["id"] for job in data]


@pytest.fixture
async def sorting_ledger(
    pool: asyncpg.Pool, database_url: str, schema: str
) -> AsyncIterator[Ledger]:
    """The app on connections that may not read an index: Postgres sorts the rows itself, so
    rows that tie on a sort key come in whatever order its sort leaves them, not the index's."""
    no_index = await asyncpg.create_pool(
        database_url,
        min_size=1,
        max_size=2,
        server_settings={
            "search_path": f'"{schema}", public',
            "enable_indexscan": "off",
            "enable_indexonlyscan": "off",
            "enable_bitmapscan": "off",
        },
    )
    try:
        async with served_ledger(no_index) as served:
            yield served
    finally:
        await no_index.close()


@pytest.mark.parametrize("plan", ["index", "sort"])
async def test_paging_with_before_reaches_every_run_once_in_order(
    ledger: Ledger,
    sorting_ledger: Ledger,
    http: aiohttp.ClientSession,
    plan: str,
) -> None:
    history = await insert_history(ledger.pool)
    served = ledger if plan == "index" else sorting_ledger

    pages = [body async for body in walk(http, served, "limit=30")]

    seen = [job_id for body in pages for job_id in ids(body)]
    assert seen == history  # no duplicate, no gap, in the history's order
    assert [body["meta"]["count"] for body in pages] == [30] * 8 + [10]
    assert pages[-1]["meta"]["nextBefore"] is None


async def test_a_page_that_ends_with_the_oldest_run_offers_no_next_cursor(
    ledger: Ledger, http: aiohttp.ClientSession
) -> None:
    await insert_history(ledger.pool, 60)
    pages = [body async for body in walk(http, ledger, "limit=30")]
    assert [(body["meta"]["count"], body["meta"]["nextBefore"] is None) for body in pages] == [
        (30, False),
        (30, True),
    ]


async def test_a_run_recorded_while_paging_shifts_no_page(
    ledger: Ledger, http: aiohttp.ClientSession
) -> None:
    history = await insert_history(ledger.pool)
    seen: list[str] = []
    async for body in walk(http, ledger):
        seen += ids(body)
        # Every page, a new newest run: an offset would push the next page back by one.
        await insert_job(ledger.pool, started_at=NOW + timedelta(minutes=len(seen)))
    assert seen == history


async def test_paging_keeps_to_the_job_name(ledger: Ledger, http: aiohttp.ClientSession) -> None:
    history = await insert_history(ledger.pool, 70)
    for i in range(70):
        await insert_job(ledger.pool, started_at=NOW - timedelta(minutes=i), job_name="backfill")

    pages = [body async for body in walk(http, ledger, "jobName=weekly-gvs-recalculation")]

    assert [job_id for body in pages for job_id in ids(body)] == history
    assert len(pages) == 3


@pytest.mark.parametrize(
    "cursor",
    [
        "yesterday",
        "1766361600123456",
        "2025-12-22T00:00:00Z,0b9e7a53-6f5c-4d4e-9a51-2d8f6c1e4b7a",
        "1766361600123456,not-a-uuid",
        "1766361600123456,0b9e7a536f5c4d4e9a512d8f6c1e4b7a",
        "-1,0b9e7a53-6f5c-4d4e-9a51-2d8f6c1e4b7a",
        "17663616001234560,0b9e7a53-6f5c-4d4e-9a51-2d8f6c1e4b7a",
        "１７６６,0b9e7a53-6f5c-4d4e-9a51-2d8f6c1e4b7a",
        "1766361600123456,0b9e7a53-6f5c-4d4e-9a51-2d8f6c1e4b7a\n",
        "",
    ],
    ids=[
        "words",
        "no-id",
        "iso-time",
        "bad-id",
        "id-without-hyphens",
        "negative",
        "17-digits",
        "fullwidth-digits",
        "trailing-newline",
        "empty",
    ],
)
async def test_a_malformed_cursor_is_a_400_in_the_error_shape(
    ledger: Ledger, http: aiohttp.ClientSession, cursor: str
) -> None:
    status, body = await get_json(
        http, f"{ledger.url}/api/admin/job-logs?before={quote(cursor, safe='')}"
    )
    assert (status, body) == (
        400,
        {
            "error": {
                "message": "before must be a cursor '<startedAt in µs since 1970>,<id>'"
                " as meta.nextBefore gives it",
                "code": "BAD_REQUEST",
                "statusCode": 400,
            }
        },
    )


async def test_with_an_id_the_cursor_filters_like_job_name(
    ledger: Ledger, http: aiohttp.ClientSession
) -> None:
    job_id = await insert_job(ledger.pool, started_at=NOW)
    base = f"{ledger.url}/api/admin/job-logs?id={job_id}&before="
    later = cursor(NOW + timedelta(microseconds=1), uuid.UUID(int=0))
    earlier = cursor(NOW, uuid.UUID(int=0))
    status, body = await get_json(http, base + later)
    assert (status, ids(body), body["meta"]["nextBefore"]) == (200, [str(job_id)], None)
    status, body = await get_json(http, base + earlier)  # same moment, a lower id: not before
    assert (status, body["error"]["message"]) == (404, "No job log with this id")


async def test_a_cursor_anywhere_in_time_starts_the_page_there(
    ledger: Ledger, http: aiohttp.ClientSession
) -> None:
    old = await insert_job(ledger.pool, started_at=NOW - timedelta(days=400))
    await insert_job(ledger.pool, started_at=NOW)
    before = cursor(NOW - timedelta(days=365), uuid.UUID(int=0))
    status, body = await get_json(http, f"{ledger.url}/api/admin/job-logs?before={before}")
    assert (status, ids(body), body["meta"]["nextBefore"]) == (200, [str(old)], None)


# --- the history page -----------------------------------------------------------------------


@pytest.fixture
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


def page_rows(html: str) -> list[str]:
    return re.findall(r'<tr data-job-id="([0-9a-f-]+)"', html)


def link(html: str, element_id: str) -> str | None:
    found = re.search(rf'<a href="([^"]+)" id="{element_id}"', html)
    return None if found is None else found.group(1).replace("&amp;", "&")


async def test_the_history_page_links_to_older_runs_until_the_first(
    ledger: Ledger, browser: aiohttp.ClientSession
) -> None:
    history = await insert_history(ledger.pool, 75)
    await log_in(browser, ledger.url)

    seen: list[str] = []
    url: str | None = "/admin/jobs"
    visited = 0
    while url is not None:
        status, html = await page(browser, ledger.url + url)
        assert status == 200, html
        seen += page_rows(html)
        assert (link(html, "newest-runs") is None) == (visited == 0)
        url = link(html, "older-runs")
        visited += 1

    assert seen == history
    assert visited == 3


async def test_the_history_page_keeps_the_job_name_in_its_older_link(
    ledger: Ledger, browser: aiohttp.ClientSession
) -> None:
    for i in range(31):
        await insert_job(ledger.pool, started_at=NOW - timedelta(minutes=i), job_name="backfill")
    await log_in(browser, ledger.url)
    _, html = await page(browser, f"{ledger.url}/admin/jobs?jobName=backfill")
    older = link(html, "older-runs")
    assert older is not None and older.startswith("/admin/jobs?jobName=backfill&before=")
    _, html = await page(browser, ledger.url + older)
    assert len(page_rows(html)) == 1
    assert link(html, "newest-runs") == "/admin/jobs?jobName=backfill"


async def test_a_malformed_cursor_on_the_history_page_is_a_400_page(
    ledger: Ledger, browser: aiohttp.ClientSession
) -> None:
    await log_in(browser, ledger.url)
    status, html = await page(browser, f"{ledger.url}/admin/jobs?before=yesterday")
    assert status == 400
    assert "before must be a cursor" in html


async def test_the_statistics_say_over_which_runs_they_were_computed(
    ledger: Ledger, browser: aiohttp.ClientSession, http: aiohttp.ClientSession
) -> None:
    for week in range(40):
        await insert_job(ledger.pool, started_at=NOW - timedelta(days=7 * week))
    status, body = await get_json(http, f"{ledger.url}/api/admin/job-stats")
    window = {k: body["data"][k] for k in ("runs", "windowRuns", "windowStart", "windowEnd")}
    assert (status, window) == (
        200,
        {
            "runs": 30,
            "windowRuns": 30,
            "windowStart": "2025-06-02T12:00:00.000Z",  # week 29, the 30th newest
            "windowEnd": "2025-12-22T12:00:00.000Z",
        },
    )
    await log_in(browser, ledger.url)
    _, html = await page(browser, f"{ledger.url}/admin/jobs")
    assert (
        "Statistics over the last 30 runs, started 2025-06-02 12:00:00 UTC to"
        " 2025-12-22 12:00:00 UTC" in html
    )
