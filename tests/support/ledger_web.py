"""The ledger's web app served on loopback for tests, and its rows written as the fold leaves them.

Shared by the ``test_api_*`` and ``test_admin_pages*`` integration tests: the app is served by
uvicorn on 127.0.0.1 and read with aiohttp; rows go into the test's own schema with SQL.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
import orjson

from chassis.health import ReadinessCheck, bound_port, serve_http
from chassis.local_time import UTC_ZONE
from contracts import RunRequested
from job_ledger.web import create_app

PASSWORD = "s3cret-admin-pässword"
SESSION_SECRET = "test-session-secret-0123456789"
NOW = datetime(2025, 12, 22, 12, 0, 0, tzinfo=UTC)
AUTH = {"Authorization": f"Bearer {PASSWORD}"}
JOB_LOG_STORY_FIELDS = (
    "id",
    "jobName",
    "startedAt",
    "completedAt",
    "status",
    "daosProcessed",
    "daosTotal",
    "errors",
    "durationMs",
    "cacheInvalidated",
    "createdAt",
    "updatedAt",
)
"""The fields of a job log the story promises the admin site, in the story's order."""


class Clock:
    """A clock a test moves by hand."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Ledger:
    """A served ledger app: its base URL, what it was asked to publish, its clock."""

    url: str
    pool: asyncpg.Pool
    published: list[RunRequested]
    clock: Clock
    fail_publish: list[bool] = field(default_factory=lambda: [False])


@contextlib.asynccontextmanager
async def served_ledger(
    pool: asyncpg.Pool,
    request_run: Callable[[RunRequested], Awaitable[None]] | None = None,
    readiness: Mapping[str, ReadinessCheck] | None = None,
    clock: Clock | None = None,
    job_name: str = "weekly-gvs-recalculation",
    admin_timezone: ZoneInfo = UTC_ZONE,
) -> AsyncIterator[Ledger]:
    """Serve the ledger's app (configured for ``job_name``, pages in ``admin_timezone``) on a
    free loopback port."""
    clock = clock or Clock()
    published: list[RunRequested] = []
    ledger = Ledger(url="", pool=pool, published=published, clock=clock)

    async def record(command: RunRequested) -> None:
        if ledger.fail_publish[0]:
            raise ConnectionError("broker unreachable (test)")
        published.append(command)

    app = create_app(
        pool=pool,
        admin_password=PASSWORD,
        request_run=request_run or record,
        readiness=readiness or {},
        session_secret=SESSION_SECRET,
        admin_base_url="http://127.0.0.1",
        job_name=job_name,
        job_schedule="0 0 * * 1",
        clock=clock,
        admin_timezone=admin_timezone,
    )
    async with serve_http(app, "127.0.0.1", 0) as server:
        ledger.url = f"http://127.0.0.1:{bound_port(server)}"
        yield ledger


async def insert_job(
    pool: asyncpg.Pool,
    *,
    started_at: datetime,
    status: str = "completed",
    job_name: str = "weekly-gvs-recalculation",
    processed: int = 10,
    total: int = 10,
    failures: list[tuple[str, str, str]] | None = None,
    duration_ms: int | None = 332_000,
    trigger: str | None = "cron",
    fatal_error: str | None = None,
    job_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """Insert a job_logs row as the fold leaves it; return its id."""
    job_id = job_id or uuid.uuid4()
    errors = (
        None
        if failures is None
        else orjson.dumps([{"daoId": d, "daoName": n, "error": e} for d, n, e in failures]).decode()
    )
    finished = status != "running"
    completed_at = started_at + timedelta(milliseconds=duration_ms or 0) if finished else None
    failed = len(failures or [])
    events = processed + failed + (2 if finished else 1)
    await pool.execute(
        "INSERT INTO job_logs (id, job_name, started_at, completed_at, status, daos_processed,"
        " daos_total, errors, duration_ms, cache_invalidated, created_at, updated_at, trigger,"
        " daos_failed, fatal_error, last_event_at, last_sequence, events_received,"
        " expected_events, has_started)"
        " VALUES ($1, $2, $3::timestamptz, $4::timestamptz, $5::job_status, $6, $7, $8::jsonb,"
        " $9, $10, $3,"
        " coalesce($4, $3), $11, $12, $13, coalesce($4, $3), $14 - 1, $14, $15, true)",
        job_id,
        job_name,
        started_at,
        completed_at,
        status,
        processed,
        total,
        errors,
        duration_ms if finished else None,
        finished and status == "completed",
        trigger,
        failed,
        fatal_error,
        events,
        events if finished else None,
    )
    return job_id


async def insert_event(
    pool: asyncpg.Pool,
    job_id: uuid.UUID,
    event_type: str,
    sequence: int | None,
    occurred_at: datetime,
    payload: dict[str, Any],
    job_name: str = "weekly-gvs-recalculation",
) -> uuid.UUID:
    event_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO job_events (event_id, job_id, job_name, event_type, schema_version,"
        " sequence, occurred_at, payload) VALUES ($1, $2, $3, $4, 1, $5, $6, $7::jsonb)",
        event_id,
        job_id,
        job_name,
        event_type,
        sequence,
        occurred_at,
        orjson.dumps(payload).decode(),
    )
    return event_id


async def insert_notification(
    pool: asyncpg.Pool,
    job_id: uuid.UUID,
    channel: str,
    kind: str,
    state: str,
    occurred_at: datetime,
    error: str | None = None,
) -> None:
    await pool.execute(
        "INSERT INTO job_notifications (job_id, channel, kind, state, attempts, provider_id,"
        " error, event_id, occurred_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        job_id,
        channel,
        kind,
        state,
        1 if state == "sent" else 5,
        "re_123" if state == "sent" else None,
        error,
        uuid.uuid4(),
        occurred_at,
    )


async def get_json(
    session: aiohttp.ClientSession, url: str, headers: Mapping[str, str] | None = None
) -> tuple[int, Any]:
    async with session.get(url, headers=AUTH if headers is None else headers) as response:
        return response.status, await response.json(content_type=None)


async def post_json(
    session: aiohttp.ClientSession,
    url: str,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, Any]:
    data = None if body is None else orjson.dumps(body)
    async with session.post(
        url, data=data, headers=AUTH if headers is None else headers
    ) as response:
        return response.status, await response.json(content_type=None)


def error(status: int, code: str, message: str) -> dict[str, Any]:
    return {"error": {"message": message, "code": code, "statusCode": status}}


async def log_in(browser: aiohttp.ClientSession, url: str, password: str = PASSWORD) -> None:
    """Log ``browser`` (a session that keeps cookies) in to the admin pages served at ``url``."""
    async with browser.post(
        f"{url}/admin/login",
        data={"password": password, "next": "/admin/jobs"},
        allow_redirects=False,
    ) as response:
        assert (response.status, response.headers["Location"]) == (303, "/admin/jobs")


async def page(browser: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    """GET a page without following redirects; return its status and HTML."""
    async with browser.get(url, allow_redirects=False) as response:
        return response.status, await response.text()


def csrf_token(html: str) -> str:
    """The CSRF token the page's forms carry."""
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert found, html
    return found.group(1)


async def press(
    browser: aiohttp.ClientSession, url: str, action: str, fields: Mapping[str, str] | None = None
) -> str:
    """Submit the form posting to ``action`` on the page at ``url`` (with its CSRF token) as a
    browser would; return where the answer redirects (the post-redirect-get target)."""
    _, html = await page(browser, url)
    data = {"csrf_token": csrf_token(html), **(fields or {})}
    origin = url.split("/admin", 1)[0]
    async with browser.post(f"{origin}{action}", data=data, allow_redirects=False) as response:
        assert response.status == 303, await response.text()
        return response.headers["Location"]
