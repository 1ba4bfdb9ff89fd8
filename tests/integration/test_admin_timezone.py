"""``ADMIN_TIMEZONE``: people read local time with its zone, machines keep UTC.

The admin pages and the emails write moments in the configured zone with its abbreviation; the
API answers UTC ``Z`` times whatever the zone; a name that is no IANA zone stops the start with
one line naming the variable and exit 2. On the real Postgres and RabbitMQ; the notifier runs
as its operators run it, in a subprocess writing its emails to a folder.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
import pytest

from tests.harness.processes import SCRIPTS, run_command
from tests.harness.stack import Stack
from tests.support.broker import consumer_count, eventually
from tests.support.ledger_web import NOW, get_json, insert_job, log_in, page, served_ledger
from tests.support.notifier_harness import publish
from tests.support.outcomes import job_finished

PARIS = ZoneInfo("Europe/Paris")
FINISHED_AT = datetime(2026, 12, 1, 16, 5, 32, tzinfo=UTC)
"""17:05:32 in Paris (CET, winter)."""


async def test_pages_show_paris_time_with_its_zone_while_the_api_stays_utc(
    pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    job_id = await insert_job(pool, started_at=NOW, duration_ms=60_000)
    async with (
        served_ledger(pool, admin_timezone=PARIS) as ledger,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser,
    ):
        await log_in(browser, ledger.url)
        _, history = await page(browser, f"{ledger.url}/admin/jobs")
        _, detail = await page(browser, f"{ledger.url}/admin/jobs/{job_id}")
        _, body = await get_json(http, f"{ledger.url}/api/admin/job-logs?id={job_id}")

    # NOW is 12:00 UTC on 22 December: 13:00 in Paris.
    assert "2025-12-22 13:00:00 CET" in history
    assert "<dd>2025-12-22 13:00:00 CET</dd>" in detail  # started
    assert "<dd>2025-12-22 13:01:00 CET</dd>" in detail  # completed a minute later
    assert " UTC<" not in history + detail
    job = body["data"][0]
    assert (job["startedAt"], job["completedAt"]) == (
        "2025-12-22T12:00:00.000Z",
        "2025-12-22T12:01:00.000Z",
    )


async def test_a_summer_run_is_shown_in_summer_time(
    pool: asyncpg.Pool,
) -> None:
    job_id = await insert_job(pool, started_at=datetime(2026, 7, 1, 16, 5, 32, tzinfo=UTC))
    async with (
        served_ledger(pool, admin_timezone=PARIS) as ledger,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser,
    ):
        await log_in(browser, ledger.url)
        _, detail = await page(browser, f"{ledger.url}/admin/jobs/{job_id}")
    assert "<dd>2026-07-01 18:05:32 CEST</dd>" in detail


async def test_the_email_shows_paris_time_with_its_zone(stack: Stack, tmp_path: Path) -> None:
    outbox = tmp_path / "emails"
    env = {k: v for k, v in os.environ.items() if k not in {"RESEND_API_KEY", "SLACK_WEBHOOK_URL"}}
    env.update(
        stack.env(
            notifier_schema=stack.schema,
            email_transport="file",
            email_outbox_dir=str(outbox),
            admin_timezone="Europe/Paris",
            log_format="json",
            connect_timeout="3s",
        )
    )
    notifier = await _start_notifier(env, tmp_path / "notifier.log")
    try:
        await eventually(lambda: _consumers(stack), lambda n: n >= 1, timeout_s=30, interval_s=0.1)
        event = job_finished(
            "completed",
            3,
            3,
            duration_ms=4100,
            cache_invalidated=True,
            occurred_at=FINISHED_AT,
        )
        await publish(await stack.amqp.channel(), stack.topology, event)
        header = outbox / f"{event.job_id}-success.json"
        await eventually(_exists(header), bool, timeout_s=30)
    finally:
        notifier.terminate()
        await notifier.wait()

    text = (outbox / f"{event.job_id}-success.txt").read_text()
    html = (outbox / f"{event.job_id}-success.html").read_text()
    assert "Timestamp: 2026-12-01 17:05:32 CET" in text
    assert "2026-12-01 17:05:32 CET" in html
    assert "UTC" not in text + html
    assert json.loads(header.read_text())["subject"].startswith("✅ Weekly GVS Recalculation")


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "utc", "../../etc/passwd"])
async def test_a_zone_that_is_not_an_iana_name_stops_both_services_with_one_line(
    stack: Stack, zone: str
) -> None:
    said = f"ADMIN_TIMEZONE: Value error, {zone!r} is not an IANA time zone name"
    base = {"PATH": "/usr/bin:/bin", "ADMIN_TIMEZONE": zone, "CONNECT_TIMEOUT": "2s"}
    ledger = await run_command(
        [str(SCRIPTS / "job-ledger"), "migrate"], {**stack.ledger_env(), **base}
    )
    notifier = await run_command(
        [sys.executable, "-m", "notifier", "migrate"],
        {**base, **stack.env(notifier_schema=stack.schema)},
    )
    for program, (code, _, err) in (("job-ledger", ledger), ("notifier", notifier)):
        assert code == 2, err
        assert err.splitlines() == [err.strip()], err
        assert err.startswith(f"{program}: invalid configuration: "), err
        assert said in err, err


async def _start_notifier(env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as sink:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "notifier",
            "serve",
            "--port",
            "0",
            env=env,
            stdout=sink,
            stderr=sink,
        )


async def _consumers(stack: Stack) -> int:
    return await consumer_count(stack.amqp, stack.topology.notifier_queue)


def _exists(path: Path) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return await asyncio.to_thread(path.exists)

    return probe
