"""``job-ledger serve --role``: the fold and the API as processes of their own.

Each role runs as the real console script against this test's own schema and broker names:
a ``fold`` process consumes and folds but serves no pages, an ``api`` process serves the
history and publishes run requests but consumes nothing from the ledger's queue.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from job_ledger.job_logs import load_rows
from job_ledger.projection import fold_jobs
from tests.harness.processes import (
    SCRIPTS,
    ServiceProcess,
    run_command,
    running,
    wait_http_ok,
)
from tests.harness.stack import Stack
from tests.support.broker import consumer_count, eventually
from tests.support.ledger import job_events, publish, take_commands

PASSWORD = "correct horse battery staple"
AUTH = {"Authorization": f"Bearer {PASSWORD}"}


@pytest.fixture
def env(stack: Stack) -> dict[str, str]:
    """What both roles read; the fold needs no ``ADMIN_PASSWORD`` and gets none."""
    return stack.ledger_env()


def serve(env: dict[str, str], tmp_path: Path, role: str, port: int) -> ServiceProcess:
    argv = ["job-ledger", "serve", "--role", role, "--host", "127.0.0.1", "--port", str(port)]
    extra = {"ADMIN_PASSWORD": PASSWORD} if role == "api" else {}
    return ServiceProcess(f"job-ledger-{role}", argv, {**env, **extra}, tmp_path)


async def get(http: aiohttp.ClientSession, url: str, **kwargs: Any) -> tuple[int, Any]:
    async with http.get(url, **kwargs) as response:
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.text()


async def events_received(pool: asyncpg.Pool, job_id: uuid.UUID) -> int | None:
    value = await pool.fetchval("SELECT events_received FROM job_logs WHERE id = $1", job_id)
    return None if value is None else int(value)


async def test_a_fold_process_folds_published_events_and_serves_no_pages(
    stack: Stack,
    pool: asyncpg.Pool,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    port = stack.port()
    fold = serve(env, tmp_path, "fold", port)
    base = f"http://127.0.0.1:{port}"
    job_id = uuid.uuid4()
    events = job_events(job_id, 40)
    async with running(fold), aiohttp.ClientSession() as http:
        await wait_http_ok(f"{base}/readyz", fold)
        status, ready = await get(http, f"{base}/readyz")
        assert (status, ready["checks"]) == (
            200,
            {"database": "ok", "broker": "ok", "consumer": "ok"},
        )
        await publish(stack.amqp, stack.topology, events)
        await eventually(lambda: events_received(pool, job_id), lambda n: n == len(events))

        pages = [
            await get(http, f"{base}{path}", headers=AUTH, allow_redirects=False)
            for path in ("/admin", "/admin/login", "/api/admin/job-logs", "/openapi.json")
        ]
        status, metrics = await get(http, f"{base}/metrics")
        assert await fold.stop() == 0, fold.log_tail()

    assert [status for status, _ in pages] == [404, 404, 404, 404]
    assert status == 200
    assert 'ledger_events_folded_total{event_type="DaoProcessed"}' in metrics
    async with pool.acquire() as conn:
        assert await load_rows(conn, [job_id]) == fold_jobs(events)


async def test_an_api_process_serves_the_history_publishes_run_requests_and_consumes_nothing(
    stack: Stack,
    pool: asyncpg.Pool,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    fold_port, api_port = stack.port(), stack.port()
    fold = serve(env, tmp_path, "fold", fold_port)
    job_id = uuid.uuid4()
    events = job_events(job_id, 30)
    async with running(fold):
        await wait_http_ok(f"http://127.0.0.1:{fold_port}/readyz", fold)
        await publish(stack.amqp, stack.topology, events)
        await eventually(lambda: events_received(pool, job_id), lambda n: n == len(events))
        assert await fold.stop() == 0, fold.log_tail()

    api = serve(env, tmp_path, "api", api_port)
    base = f"http://127.0.0.1:{api_port}"
    async with running(api), aiohttp.ClientSession() as http:
        await wait_http_ok(f"{base}/readyz", api)
        _, ready = await get(http, f"{base}/readyz")
        consumers = await consumer_count(stack.amqp, stack.topology.ledger_queue)
        status, history = await get(http, f"{base}/api/admin/job-logs", headers=AUTH)
        page_status, _ = await get(http, f"{base}/admin/login")
        async with http.post(f"{base}/api/admin/jobs/run", headers=AUTH) as response:
            run_status = response.status
        commands = await take_commands(stack.amqp, stack.topology, 1)
        assert await api.stop() == 0, api.log_tail()

    assert ready["checks"] == {"database": "ok", "broker": "ok"}
    assert consumers == 0, "the api role must not consume the ledger's queue"
    assert status == 200
    (job,) = [j for j in history["data"] if j["id"] == str(job_id)]
    assert (job["eventsReceived"], job["daosProcessed"], job["daosFailed"]) == (30, 25, 4)
    assert (page_status, run_status) == (200, 202)
    assert [(c.trigger, c.job_name) for c in commands] == [("manual", "weekly-gvs-recalculation")]


async def test_an_all_in_one_process_consumes_the_ledger_queue(
    stack: Stack, env: dict[str, str], tmp_path: Path
) -> None:
    port = stack.port()
    argv = ["job-ledger", "serve", "--host", "127.0.0.1", "--port", str(port)]
    ledger = ServiceProcess("job-ledger", argv, {**env, "ADMIN_PASSWORD": PASSWORD}, tmp_path)
    async with running(ledger):
        await wait_http_ok(f"http://127.0.0.1:{port}/readyz", ledger)
        assert await consumer_count(stack.amqp, stack.topology.ledger_queue) == 1
        assert await ledger.stop() == 0, ledger.log_tail()


@pytest.mark.parametrize("role", ["both", ""])
async def test_an_unknown_role_is_one_line_on_stderr_and_exit_2(
    env: dict[str, str], role: str
) -> None:
    code, out, err = await run_command(
        [str(SCRIPTS / "job-ledger"), "serve", "--role", role],
        {"PATH": "/usr/bin:/bin", **env, "ADMIN_PASSWORD": PASSWORD},
    )
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"job-ledger: error: argument --role: invalid choice: {role!r}"
        " (choose from 'all', 'api', 'fold')"
    ]
