"""The ledger's JSON API on the real Postgres, served over loopback HTTP: the story's contract.

Rows are written into the test's own schema with SQL, as the fold would leave them; the app is
served by uvicorn on 127.0.0.1 and read with aiohttp (helpers in ``tests.support.ledger_web``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
import orjson
import pytest

from tests.support.ledger_web import (
    AUTH,
    NOW,
    PASSWORD,
    Ledger,
    error,
    get_json,
    insert_job,
    insert_notification,
    post_json,
    served_ledger,
)

# --- fixtures -------------------------------------------------------------------------------


# --- auth -----------------------------------------------------------------------------------

ROUTES = [
    ("GET", "/api/admin/job-logs"),
    ("GET", f"/api/admin/job-logs?id={uuid.UUID(int=1)}"),
    ("GET", f"/api/admin/job-logs/{uuid.UUID(int=1)}/events"),
    ("GET", f"/api/admin/job-logs/{uuid.UUID(int=1)}/errors"),
    ("GET", "/api/admin/job-stats"),
    ("POST", "/api/admin/jobs/run"),
    ("POST", f"/api/admin/job-logs/{uuid.UUID(int=1)}/retry-failed"),
    ("GET", "/api/admin/no-such-route"),
]
WRONG_AUTH = [
    {},
    {"Authorization": "Bearer wrong"},
    {"Authorization": f"Bearer {PASSWORD[:-1]}X"},  # differs in the last character only
    {"Authorization": f"Bearer {PASSWORD}x"},
    {"Authorization": f"Basic {PASSWORD}"},
    {"Authorization": "Bearer"},
]


async def test_every_api_route_refuses_a_missing_or_wrong_token_with_the_401_shape(
    ledger: Ledger, http: aiohttp.ClientSession
) -> None:
    for method, path in ROUTES:
        for headers in WRONG_AUTH:
            async with http.request(method, ledger.url + path, headers=headers) as response:
                body = await response.json()
                assert (response.status, body) == (
                    401,
                    error(401, "UNAUTHORIZED", "Unauthorized"),
                ), (
                    method,
                    path,
                    headers,
                )
                assert response.headers["WWW-Authenticate"] == "Bearer"
        # The right token between routes keeps the client within its guessing budget.
        assert (await get_json(http, ledger.url + "/api/admin/job-stats"))[0] == 200
    assert ledger.published == []


async def test_the_right_token_is_accepted_whatever_the_scheme_case(
    ledger: Ledger, http: aiohttp.ClientSession
) -> None:
    status, body = await get_json(
        http, ledger.url + "/api/admin/job-logs", {"Authorization": f"bearer {PASSWORD}"}
    )
    assert (status, body) == (
        200,
        {"data": [], "meta": {"count": 0, "limit": 30, "nextBefore": None}},
    )


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=abc", "limit must be a whole number from 1 (capped at 100)"),
        ("limit=-1", "limit must be a whole number from 1 (capped at 100)"),
        ("limit=0", "limit must be a whole number from 1 (capped at 100)"),
        ("limit=1.5", "limit must be a whole number from 1 (capped at 100)"),
        ("limit=", "limit must be a whole number from 1 (capped at 100)"),
        ("id=not-a-uuid", "id must be a UUID"),
        (
            "jobName=Not%20A%20Job",
            "jobName must be lowercase letters, digits, '-' or '_' (at most 100)",
        ),
    ],
)
async def test_a_malformed_query_is_a_400_never_a_500(
    ledger: Ledger, http: aiohttp.ClientSession, query: str, message: str
) -> None:
    status, body = await get_json(http, f"{ledger.url}/api/admin/job-logs?{query}")
    assert (status, body) == (400, error(400, "BAD_REQUEST", message))


async def test_a_malformed_id_in_the_path_is_a_400(
    ledger: Ledger, http: aiohttp.ClientSession
) -> None:
    for path in ("events", "errors"):
        status, body = await get_json(http, f"{ledger.url}/api/admin/job-logs/not-a-uuid/{path}")
        assert (status, body) == (400, error(400, "BAD_REQUEST", "id must be a UUID"))
    status, body = await post_json(http, f"{ledger.url}/api/admin/job-logs/123/retry-failed")
    assert (status, body) == (400, error(400, "BAD_REQUEST", "id must be a UUID"))


async def test_an_unknown_job_is_a_404(ledger: Ledger, http: aiohttp.ClientSession) -> None:
    unknown = uuid.uuid4()
    base = f"{ledger.url}/api/admin/job-logs"
    assert await get_json(http, f"{base}?id={unknown}") == (
        404,
        error(404, "NOT_FOUND", "No job log with this id"),
    )
    assert await get_json(http, f"{base}/{unknown}/events") == (
        404,
        error(404, "NOT_FOUND", "No job with this id"),
    )
    assert await get_json(http, f"{base}/{unknown}/errors") == (
        404,
        error(404, "NOT_FOUND", "No job log with this id"),
    )
    assert await post_json(http, f"{base}/{unknown}/retry-failed") == (
        404,
        error(404, "NOT_FOUND", "No job with this id"),
    )


async def test_unknown_routes_and_methods_answer_in_the_error_shape(
    ledger: Ledger, http: aiohttp.ClientSession
) -> None:
    assert await get_json(http, f"{ledger.url}/api/admin/nothing-here") == (
        404,
        error(404, "NOT_FOUND", "Not found"),
    )
    assert await get_json(http, f"{ledger.url}/nothing-here", {}) == (
        404,
        error(404, "NOT_FOUND", "Not found"),
    )
    async with http.delete(f"{ledger.url}/api/admin/job-logs", headers=AUTH) as response:
        assert response.status == 405
        assert await response.json() == error(405, "METHOD_NOT_ALLOWED", "Method not allowed")


async def test_an_unexpected_failure_is_a_500_that_shows_nothing_internal(
    ledger: Ledger, http: aiohttp.ClientSession
) -> None:
    # A real fault: the table the query reads is gone.
    await ledger.pool.execute("DROP TABLE job_notifications")
    async with http.get(f"{ledger.url}/api/admin/job-logs", headers=AUTH) as response:
        text = await response.text()
        assert response.status == 500
        assert response.content_type == "application/json"
    assert orjson.loads(text) == error(500, "INTERNAL", "Internal error")
    assert "job_notifications" not in text


# --- the list -------------------------------------------------------------------------------


async def test_limit_defaults_to_30_and_500_is_capped_at_100(
    ledger: Ledger, http: aiohttp.ClientSession
) -> None:
    for n in range(120):
        await insert_job(ledger.pool, started_at=NOW - timedelta(hours=n))
    status, body = await get_json(http, f"{ledger.url}/api/admin/job-logs")
    assert (status, len(body["data"]), body["meta"]["count"], body["meta"]["limit"]) == (
        200,
        30,
        30,
        30,
    )
    for asked in (101, 500):
        status, body = await get_json(http, f"{ledger.url}/api/admin/job-logs?limit={asked}")
        assert (status, len(body["data"]), body["meta"]["count"], body["meta"]["limit"]) == (
            200,
            100,
            100,
            100,
        )
    status, body = await get_json(http, f"{ledger.url}/api/admin/job-logs?limit=7")
    assert (status, len(body["data"]), body["meta"]["count"], body["meta"]["limit"]) == (
        200,
        7,
        7,
        7,
    )


async def test_jobs_come_newest_first_with_the_storys_fields_exactly(
    ledger: Ledger, http: aiohttp.ClientSession
) -> None:
    week = timedelta(days=7)
    middle = await insert_job(ledger.pool, started_at=NOW - week)
    newest = await insert_job(
        ledger.pool,
        started_at=datetime(2025, 12, 22, 0, 0, tzinfo=UTC),
        processed=8,
        failures=[("dao-1", "Uniswap", "timeout"), ("dao-2", "Aave", "HTTP 502")],
        status="completed",
        trigger="manual",
    )
    oldest = await insert_job(ledger.pool, started_at=NOW - 2 * week)
    await insert_notification(ledger.pool, newest, "email", "success", "sent", NOW)
    await insert_notification(ledger.pool, newest, "slack", "warning", "failed", NOW, "HTTP 500")

    status, body = await get_json(http, f"{ledger.url}/api/admin/job-logs")
    assert status == 200
    assert [j["id"] for j in body["data"]] == [str(newest), str(middle), str(oldest)]
    assert body["data"][0] == {
        "id": str(newest),
        "jobName": "weekly-gvs-recalculation",
        "startedAt": "2025-12-22T00:00:00.000Z",
        "completedAt": "2025-12-22T00:05:32.000Z",
        "status": "completed",
        "daosProcessed": 8,
        "daosTotal": 10,
        "errors": [
            {"daoId": "dao-1", "daoName": "Uniswap", "error": "timeout"},
            {"daoId": "dao-2", "daoName": "Aave", "error": "HTTP 502"},
        ],
        "durationMs": 332000,
        "cacheInvalidated": True,
        "createdAt": "2025-12-22T00:00:00.000Z",
        "updatedAt": "2025-12-22T00:05:32.000Z",
        "trigger": "manual",
        "daosFailed": 2,
        "fatalError": None,
        "lastEventAt": "2025-12-22T00:05:32.000Z",
        "abandonedAt": None,
        "outcome": "completed",
        "scheduledFor": None,
        "eventsReceived": 12,
        "expectedEvents": 12,
        "complete": True,
        "notifications": [
            {
                "channel": "email",
                "kind": "success",
                "state": "sent",
                "attempts": 1,
                "providerId": "re_123",
                "error": None,
                "reason": None,
                "occurredAt": "2025-12-22T12:00:00.000Z",
            },
            {
                "channel": "slack",
                "kind": "warning",
                "state": "failed",
                "attempts": 5,
                "providerId": None,
                "error": "HTTP 500",
                "reason": None,
                "occurredAt": "2025-12-22T12:00:00.000Z",
            },
        ],
        "progress": None,
    }
    assert body["data"][1]["errors"] is None


async def test_id_gives_that_one_job_and_job_name_filters(
    ledger: Ledger, http: aiohttp.ClientSession
) -> None:
    gvs = await insert_job(ledger.pool, started_at=NOW - timedelta(hours=1))
    other = await insert_job(ledger.pool, started_at=NOW, job_name="nightly-backfill")

    status, body = await get_json(http, f"{ledger.url}/api/admin/job-logs?id={gvs}")
    assert (status, [j["id"] for j in body["data"]], body["meta"]) == (
        200,
        [str(gvs)],
        {"count": 1, "limit": 30, "nextBefore": None},
    )
    status, body = await get_json(http, f"{ledger.url}/api/admin/job-logs?jobName=nightly-backfill")
    assert [j["id"] for j in body["data"]] == [str(other)]
    status, body = await get_json(
        http, f"{ledger.url}/api/admin/job-logs?jobName=nightly-backfill&id={gvs}"
    )
    assert status == 404


async def test_a_running_job_shows_its_progress_rate_and_eta(
    ledger: Ledger, http: aiohttp.ClientSession
) -> None:
    job = await insert_job(
        ledger.pool,
        started_at=NOW - timedelta(seconds=100),
        status="running",
        processed=40,
        failures=[(f"dao-{i}", f"DAO {i}", "boom") for i in range(10)],
        total=200,
    )
    status, body = await get_json(http, f"{ledger.url}/api/admin/job-logs?id={job}")
    assert status == 200
    [running] = body["data"]
    assert (running["status"], running["completedAt"], running["complete"]) == (
        "running",
        None,
        False,
    )
    assert running["progress"] == {
        "processed": 40,
        "failed": 10,
        "total": 200,
        "ratePerSecond": 0.5,
        "etaSeconds": 300,
        "lastEventAt": "2025-12-22T11:58:20.000Z",
    }


# --- health, metrics, document --------------------------------------------------------------


async def test_health_readiness_metrics_and_openapi_are_served_without_a_token(
    pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    async def database() -> str | None:
        await pool.fetchval("SELECT 1")
        return None

    async def broker() -> str | None:
        return "not consuming"

    async with served_ledger(pool, readiness={"database": database, "broker": broker}) as ledger:
        assert await get_json(http, f"{ledger.url}/healthz", {}) == (200, {"status": "ok"})
        assert await get_json(http, f"{ledger.url}/readyz", {}) == (
            503,
            {"status": "not ready", "checks": {"database": "ok", "broker": "not consuming"}},
        )
        async with http.get(f"{ledger.url}/metrics") as response:
            assert response.status == 200
            assert "python_info" in await response.text()
        status, doc = await get_json(http, f"{ledger.url}/openapi.json", {})
        assert (status, doc["openapi"]) == (200, "3.1.0")
        assert "/api/admin/job-logs" in doc["paths"]
