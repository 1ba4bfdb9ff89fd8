"""A job's events, its failures grouped by error, and the run statistics, over loopback HTTP."""

from __future__ import annotations

import uuid
from datetime import timedelta

import aiohttp

from tests.support.ledger_web import (
    NOW,
    Ledger,
    get_json,
    insert_event,
    insert_job,
)


async def test_events_come_in_sequence_order_with_unsequenced_ones_last_by_time(
    ledger: Ledger, http: aiohttp.ClientSession
) -> None:
    job = await insert_job(ledger.pool, started_at=NOW)
    t = NOW
    # Stored out of order, as a requeue would deliver them.
    await insert_event(
        ledger.pool,
        job,
        "NotificationSent",
        None,
        t + timedelta(seconds=9),
        {"channel": "email", "kind": "success", "attempts": 1, "provider_id": "x"},
    )
    await insert_event(
        ledger.pool, job, "JobFinished", 2, t + timedelta(seconds=5), {"status": "completed"}
    )
    await insert_event(
        ledger.pool,
        job,
        "JobAbandoned",
        None,
        t + timedelta(seconds=7),
        {"last_event_at": t.isoformat(), "stale_after_s": 1800},
    )
    await insert_event(
        ledger.pool,
        job,
        "DaoProcessed",
        1,
        t + timedelta(seconds=3),
        {"dao_id": "d1", "dao_name": "<b>Uni</b>", "score": 71.5, "duration_ms": 12},
    )
    first = await insert_event(
        ledger.pool, job, "JobStarted", 0, t, {"daos_total": 1, "trigger": "cron"}
    )

    status, body = await get_json(http, f"{ledger.url}/api/admin/job-logs/{job}/events")
    assert status == 200
    assert [(e["eventType"], e["sequence"]) for e in body["data"]] == [
        ("JobStarted", 0),
        ("DaoProcessed", 1),
        ("JobFinished", 2),
        ("JobAbandoned", None),
        ("NotificationSent", None),
    ]
    assert body["meta"] == {"count": 5, "limit": 1000, "offset": 0, "total": 5}
    started = body["data"][0]
    assert {k: v for k, v in started.items() if k != "receivedAt"} == {
        "eventId": str(first),
        "eventType": "JobStarted",
        "schemaVersion": 1,
        "jobId": str(job),
        "jobName": "weekly-gvs-recalculation",
        "sequence": 0,
        "occurredAt": "2025-12-22T12:00:00.000Z",
        "payload": {"daos_total": 1, "trigger": "cron"},
    }
    assert body["data"][1]["payload"]["dao_name"] == "<b>Uni</b>"

    status, page = await get_json(
        http, f"{ledger.url}/api/admin/job-logs/{job}/events?limit=2&offset=2"
    )
    assert [e["eventType"] for e in page["data"]] == ["JobFinished", "JobAbandoned"]
    assert page["meta"] == {"count": 2, "limit": 2, "offset": 2, "total": 5}


async def test_events_of_a_job_without_a_row_yet_are_served(
    ledger: Ledger, http: aiohttp.ClientSession
) -> None:
    # A DaoProcessed that overtook its JobStarted: the store holds it before any fold.
    job = uuid.uuid4()
    await insert_event(
        ledger.pool,
        job,
        "DaoProcessed",
        3,
        NOW,
        {"dao_id": "d3", "dao_name": "C", "score": 1, "duration_ms": 1},
    )
    status, body = await get_json(http, f"{ledger.url}/api/admin/job-logs/{job}/events")
    assert (status, [e["sequence"] for e in body["data"]]) == (200, [3])


async def test_failures_are_grouped_by_error_biggest_group_first(
    ledger: Ledger, http: aiohttp.ClientSession
) -> None:
    job = await insert_job(
        ledger.pool,
        started_at=NOW,
        status="failed",
        processed=2,
        failures=[
            ("d1", "Uniswap", "HTTP 502"),
            ("d2", "Aave", "timeout after 30s"),
            ("d3", "Compound", "timeout after 30s"),
            ("d4", "<img src=x onerror=alert(1)>", "HTTP 502"),
            ("d5", "Lido", "timeout after 30s"),
        ],
    )
    status, body = await get_json(http, f"{ledger.url}/api/admin/job-logs/{job}/errors")
    assert status == 200
    assert body == {
        "data": [
            {
                "error": "timeout after 30s",
                "count": 3,
                "daos": [
                    {"daoId": "d2", "daoName": "Aave"},
                    {"daoId": "d3", "daoName": "Compound"},
                    {"daoId": "d5", "daoName": "Lido"},
                ],
            },
            {
                "error": "HTTP 502",
                "count": 2,
                "daos": [
                    {"daoId": "d1", "daoName": "Uniswap"},
                    {"daoId": "d4", "daoName": "<img src=x onerror=alert(1)>"},
                ],
            },
        ],
        "meta": {"count": 2, "failures": 5},
    }
    clean = await insert_job(ledger.pool, started_at=NOW)
    assert await get_json(http, f"{ledger.url}/api/admin/job-logs/{clean}/errors") == (
        200,
        {"data": [], "meta": {"count": 0, "failures": 0}},
    )


async def test_stats_cover_the_newest_30_runs_per_job_name(
    ledger: Ledger, http: aiohttp.ClientSession
) -> None:
    # 40 runs a week apart; the 10 oldest (outside the window) are slow failures.
    for week in range(40):
        old = week >= 30
        await insert_job(
            ledger.pool,
            started_at=NOW - timedelta(days=7 * week),
            status="failed" if old or week in (3, 4, 5) else "completed",
            duration_ms=999_000 if old else 1000 * (week + 1),
        )
    await insert_job(ledger.pool, started_at=NOW + timedelta(minutes=1), status="running")
    await insert_job(ledger.pool, started_at=NOW, job_name="other-job", duration_ms=5)

    status, body = await get_json(
        http, f"{ledger.url}/api/admin/job-stats?jobName=weekly-gvs-recalculation"
    )
    assert status == 200
    # The window: the running one and weeks 0..28; durations 1s..29s, 3 of 29 failed.
    assert body == {
        "data": {
            "jobName": "weekly-gvs-recalculation",
            "runs": 30,
            "finished": 29,
            "completed": 26,
            "failed": 3,
            "runsMissed": 0,
            "running": 1,
            "failureRate": round(3 / 29, 4),
            "durationP50Ms": 15_000,
            "durationP95Ms": 28_000,
            "lastSuccessAt": "2025-12-22T12:00:01.000Z",
            "windowRuns": 30,
            "windowStart": "2025-06-09T12:00:00.000Z",  # week 28
            "windowEnd": "2025-12-22T12:01:00.000Z",
        }
    }
    status, every = await get_json(http, f"{ledger.url}/api/admin/job-stats")
    assert (every["data"]["jobName"], every["data"]["runs"]) == (None, 30)
    status, none = await get_json(http, f"{ledger.url}/api/admin/job-stats?jobName=never-ran")
    assert none["data"] == {
        "jobName": "never-ran",
        "runs": 0,
        "finished": 0,
        "completed": 0,
        "failed": 0,
        "runsMissed": 0,
        "running": 0,
        "failureRate": None,
        "durationP50Ms": None,
        "durationP95Ms": None,
        "lastSuccessAt": None,
        "windowRuns": 30,
        "windowStart": None,
        "windowEnd": None,
    }
