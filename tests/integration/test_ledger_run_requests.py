"""Run requests and what became of them, on the real ``job-ledger serve``, broker and database.

The ledger runs as an operator starts it, configured for a job of another name than the
default (``JOB_NAME=another-job``). Its buttons and its API publish RunRequested to this test's
commands queue, which the test reads as the recalculator would; the test then answers as the
recalculator does, with RunAccepted / RunRefused on the events exchange, and reads the outcome
from the API and from the page that made the request.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from contracts import RunRequested
from contracts.events import (
    DaoFailed,
    DaoFailedPayload,
    Event,
    JobFinished,
    JobFinishedPayload,
    JobStarted,
    JobStartedPayload,
    RunAccepted,
    RunAcceptedPayload,
    RunRefused,
    RunRefusedPayload,
)
from job_ledger.recording import record_events
from job_ledger.run_requests import record_requested, run_request
from tests.harness.processes import ServiceProcess, running, wait_http_ok
from tests.harness.stack import Stack
from tests.support.broker import eventually
from tests.support.ledger import publish, take_commands
from tests.support.ledger_web import (
    PASSWORD,
    error,
    get_json,
    log_in,
    page,
    post_json,
    press,
)

JOB = "another-job"
ANSWERED = datetime(2026, 3, 2, 0, 0, 5, tzinfo=UTC)
BUSY = "a run of another-job is already going (job 6f1c2b9e-0000-4000-8000-000000000001)"


@pytest.fixture
async def ledger_url(stack: Stack, tmp_path: Path) -> AsyncIterator[str]:
    """The real ``job-ledger serve`` for ``another-job`` on this test's schema and broker names."""
    env = {
        **stack.ledger_env(),
        "ADMIN_PASSWORD": PASSWORD,
        "JOB_NAME": JOB,
    }
    port = stack.port()
    process = ServiceProcess(
        "job-ledger", ["job-ledger", "serve", "--port", str(port)], env, tmp_path
    )
    url = f"http://127.0.0.1:{port}"
    async with running(process):
        await wait_http_ok(f"{url}/readyz", process)
        yield url


@pytest.fixture
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client that keeps cookies (for 127.0.0.1 too) and does not follow redirects."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


def accepted(request: RunRequested, job_id: uuid.UUID, at: datetime = ANSWERED) -> RunAccepted:
    return RunAccepted(
        job_id=job_id,
        job_name=request.job_name,
        occurred_at=at,
        payload=RunAcceptedPayload(
            request_id=request.request_id,
            trigger=request.trigger,
            scope="all" if request.dao_ids is None else "subset",
            daos_requested=None if request.dao_ids is None else len(request.dao_ids),
        ),
    )


def refused(request: RunRequested, reason: str = BUSY, at: datetime = ANSWERED) -> RunRefused:
    return RunRefused(
        job_id=request.request_id,
        job_name=request.job_name,
        occurred_at=at,
        payload=RunRefusedPayload(
            request_id=request.request_id, trigger=request.trigger, reason=reason
        ),
    )


async def outcome(http: aiohttp.ClientSession, url: str, request_id: uuid.UUID) -> Any:
    _, body = await get_json(http, f"{url}/api/admin/run-requests/{request_id}")
    return body


async def run_from_the_jobs_page(browser: aiohttp.ClientSession, ledger_url: str) -> str:
    """Log in and press the jobs page's run button; return where the ledger redirected."""
    await log_in(browser, ledger_url)
    return await press(
        browser, f"{ledger_url}/admin/jobs", "/admin/jobs/run", {"back": "/admin/jobs"}
    )


def answered(state: str) -> Any:
    return lambda body: body.get("data", {}).get("state") == state


async def test_the_buttons_and_the_api_ask_for_the_job_the_ledger_is_configured_for(
    stack: Stack,
    ledger_url: str,
    browser: aiohttp.ClientSession,
    http: aiohttp.ClientSession,
) -> None:
    status, body = await post_json(http, f"{ledger_url}/api/admin/jobs/run")
    assert (status, body["data"]["jobName"]) == (202, JOB)
    location = await run_from_the_jobs_page(browser, ledger_url)
    from_api, from_button = await take_commands(stack.amqp, stack.topology, 2)
    assert [(c.job_name, c.trigger, c.dao_ids) for c in (from_api, from_button)] == [
        (JOB, "manual", None),
        (JOB, "manual", None),
    ]
    assert str(from_api.request_id) == body["data"]["requestId"]
    assert location == f"/admin/jobs?request={from_button.request_id}"


async def test_a_run_accepted_by_the_worker_shows_its_job_on_the_api_and_on_the_page(
    stack: Stack,
    ledger_url: str,
    browser: aiohttp.ClientSession,
    http: aiohttp.ClientSession,
) -> None:
    location = await run_from_the_jobs_page(browser, ledger_url)
    [request] = await take_commands(stack.amqp, stack.topology, 1)
    _, html = await page(browser, ledger_url + location)
    assert 'data-state="pending"' in html
    assert f"Run of {JOB} requested ({request.request_id}): waiting for" in html
    assert '<meta http-equiv="refresh" content="2">' in html
    pending = await outcome(http, ledger_url, request.request_id)
    assert pending["data"]["state"] == "pending" and pending["data"]["requestedAt"] is not None

    job_id = uuid.uuid4()
    await publish(stack.amqp, stack.topology, [accepted(request, job_id)])
    body = await eventually(
        lambda: outcome(http, ledger_url, request.request_id), answered("accepted")
    )
    assert body == {
        "data": {
            "requestId": str(request.request_id),
            "jobName": JOB,
            "trigger": "manual",
            "state": "accepted",
            "jobId": str(job_id),
            "reason": None,
            "requestedAt": pending["data"]["requestedAt"],
            "answeredAt": "2026-03-02T00:00:05.000Z",
        }
    }
    _, html = await page(browser, ledger_url + location)
    assert 'data-state="accepted"' in html
    assert f'<a href="/admin/jobs/{job_id}" id="run-request-job">job {job_id}</a>' in html
    assert 'http-equiv="refresh"' not in html


def failed_run(job_id: uuid.UUID) -> list[Event]:
    """A run of ``another-job`` whose two DAOs failed."""
    started = ANSWERED - timedelta(days=1)
    events: list[Event] = [
        JobStarted(
            job_id=job_id,
            job_name=JOB,
            occurred_at=started,
            payload=JobStartedPayload(daos_total=2, trigger="cron", scope="all"),
        )
    ]
    for seq, dao in enumerate(("d1", "d2"), 1):
        events.append(
            DaoFailed(
                job_id=job_id,
                job_name=JOB,
                sequence=seq,
                occurred_at=started,
                payload=DaoFailedPayload(dao_id=dao, dao_name=dao, error="HTTP 502", attempts=3),
            )
        )
    events.append(
        JobFinished(
            job_id=job_id,
            job_name=JOB,
            sequence=3,
            occurred_at=started + timedelta(minutes=1),
            payload=JobFinishedPayload(
                status="failed",
                daos_total=2,
                daos_processed=0,
                daos_failed=2,
                duration_ms=60_000,
                cache_invalidated=False,
                scope="all",
            ),
        )
    )
    return events


async def test_a_retry_refused_by_the_worker_shows_the_reason_on_the_job_page_and_the_api(
    stack: Stack,
    ledger_url: str,
    browser: aiohttp.ClientSession,
    http: aiohttp.ClientSession,
) -> None:
    job_id = uuid.uuid4()
    await publish(stack.amqp, stack.topology, failed_run(job_id))
    await eventually(
        lambda: get_json(http, f"{ledger_url}/api/admin/job-logs?id={job_id}"),
        lambda answer: answer[0] == 200 and answer[1]["data"][0]["status"] == "failed",
    )
    await log_in(browser, ledger_url)
    job_page = f"{ledger_url}/admin/jobs/{job_id}"
    location = await press(browser, job_page, f"/admin/jobs/{job_id}/retry-failed")
    [request] = await take_commands(stack.amqp, stack.topology, 1)
    assert (request.job_name, request.trigger, request.dao_ids) == (JOB, "retry", ["d1", "d2"])
    assert location == f"/admin/jobs/{job_id}?request={request.request_id}"
    _, html = await page(browser, ledger_url + location)
    assert f"Retry of 2 failed DAOs requested ({request.request_id})" in html

    await publish(stack.amqp, stack.topology, [refused(request)])
    body = await eventually(
        lambda: outcome(http, ledger_url, request.request_id), answered("refused")
    )
    assert (body["data"]["jobId"], body["data"]["reason"]) == (None, BUSY)
    _, html = await page(browser, ledger_url + location)
    assert 'class="flash error" role="status" id="run-request" data-state="refused"' in html
    assert (
        f'Retry of 2 failed DAOs refused by the worker: <span id="run-request-reason">{BUSY}'
        in (html)
    )
    assert 'http-equiv="refresh"' not in html


async def test_a_duplicate_or_a_second_answer_changes_nothing(
    stack: Stack,
    ledger_url: str,
    http: aiohttp.ClientSession,
) -> None:
    await post_json(http, f"{ledger_url}/api/admin/jobs/run")
    [request] = await take_commands(stack.amqp, stack.topology, 1)
    first = refused(request)
    await publish(stack.amqp, stack.topology, [first])
    before = await eventually(
        lambda: outcome(http, ledger_url, request.request_id), answered("refused")
    )
    later = refused(request, "unknown job name another-job", ANSWERED + timedelta(seconds=9))
    await publish(stack.amqp, stack.topology, [first, later])
    # Both stored (the duplicate once): everything published before the later one is folded.
    await eventually(
        lambda: get_json(http, f"{ledger_url}/api/admin/job-logs/{request.request_id}/events"),
        lambda answer: answer[0] == 200 and answer[1]["meta"]["total"] == 2,
    )
    assert await outcome(http, ledger_url, request.request_id) == before
    assert before["data"]["reason"] == BUSY


async def test_an_answer_to_a_request_made_elsewhere_creates_it_and_unknown_ids_are_404(
    stack: Stack,
    ledger_url: str,
    http: aiohttp.ClientSession,
) -> None:
    from_cron = RunRequested(job_name=JOB, trigger="cron", requested_at=ANSWERED)
    job_id = uuid.uuid4()
    await publish(stack.amqp, stack.topology, [accepted(from_cron, job_id)])
    body = await eventually(
        lambda: outcome(http, ledger_url, from_cron.request_id), answered("accepted")
    )
    assert body["data"] == {
        "requestId": str(from_cron.request_id),
        "jobName": JOB,
        "trigger": "cron",
        "state": "accepted",
        "jobId": str(job_id),
        "reason": None,
        "requestedAt": None,
        "answeredAt": "2026-03-02T00:00:05.000Z",
    }
    unknown = uuid.uuid4()
    assert await get_json(http, f"{ledger_url}/api/admin/run-requests/{unknown}") == (
        404,
        error(404, "NOT_FOUND", "No run request with this id"),
    )
    assert await get_json(http, f"{ledger_url}/api/admin/run-requests/nope") == (
        400,
        error(400, "BAD_REQUEST", "requestId must be a UUID"),
    )


async def test_answers_and_the_ledgers_own_record_end_in_one_row_in_any_order(
    pool: asyncpg.Pool,
) -> None:
    """Accepted wins over refused, the earliest of two alike wins, pending never comes back."""

    async def fold(
        request_id: uuid.UUID, steps: tuple[RunRequested | Event, ...]
    ) -> tuple[Any, ...]:
        for step in steps:
            async with pool.acquire() as conn, conn.transaction():
                if isinstance(step, RunRequested):
                    await record_requested(conn, step)
                else:
                    await record_events(conn, [step])
        async with pool.acquire() as conn:
            row = await run_request(conn, request_id)
        assert row is not None
        return (row.state, row.job_id, row.reason, row.answered_at, row.requested_at)

    rows = set()
    for order in itertools.permutations(range(4)):
        request = RunRequested(job_name=JOB, trigger="manual", requested_at=ANSWERED)
        job_id = uuid.uuid5(uuid.NAMESPACE_URL, "the run it started")
        steps: list[RunRequested | Event] = [
            request,
            refused(request, at=ANSWERED + timedelta(seconds=1)),
            accepted(request, job_id, at=ANSWERED + timedelta(seconds=2)),
            accepted(request, uuid.uuid4(), at=ANSWERED + timedelta(seconds=3)),
        ]
        rows.add(await fold(request.request_id, tuple(steps[i] for i in order)))
    assert rows == {
        ("accepted", job_id, None, ANSWERED + timedelta(seconds=2), ANSWERED),
    }
