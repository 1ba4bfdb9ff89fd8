"""Schemathesis against the served ``/openapi.json``: no 5xx, nothing that breaks the document.

Runs the ``st`` CLI as a subprocess (the app is served in this test's event loop) with every
check on, positive and negative data, a fixed seed and a bounded number of examples per
operation. Real rows are in the database so that list endpoints return real jobs.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from tests.support.ledger_web import (
    NOW,
    PASSWORD,
    Ledger,
    insert_event,
    insert_job,
    insert_notification,
    served_ledger,
)

MAX_EXAMPLES = 60
"""Per operation; with 10 operations and the coverage phase that is a few hundred requests."""


@pytest.fixture
async def ledger(pool: asyncpg.Pool) -> AsyncIterator[Ledger]:
    """The served ledger with a failed, a running and a completed job in its tables."""
    failed = await insert_job(
        pool,
        started_at=NOW - timedelta(days=7),
        status="failed",
        processed=3,
        failures=[
            ("d1", "<img src=x onerror=alert(1)>", "timeout"),
            ("d2", "Aave", "HTTP 502"),
        ],
        fatal_error=None,
    )
    await insert_job(pool, started_at=NOW, status="running", processed=2, total=10)
    await insert_job(pool, started_at=NOW - timedelta(days=14))
    await insert_event(pool, failed, "JobStarted", 0, NOW, {"daos_total": 5, "trigger": "cron"})
    await insert_notification(pool, failed, "email", "failure", "sent", NOW)
    async with served_ledger(pool) as served:
        yield served


async def test_schemathesis_finds_no_server_error_and_no_response_outside_the_schema(
    ledger: Ledger, tmp_path: Path
) -> None:
    st = Path(sys.executable).with_name("st")
    process = await asyncio.create_subprocess_exec(
        str(st),
        "run",
        f"{ledger.url}/openapi.json",
        "--url",
        ledger.url,
        "--checks",
        "all",
        "--mode",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        "20251222",
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--request-timeout",
        "10",
        "--header",
        f"Authorization: Bearer {PASSWORD}",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=240)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    assert "Authentication failed" not in text, text
    assert " failed" not in text.split("SUMMARY")[-1], text
    # Every run request schemathesis got accepted went to the publisher, none failed.
    assert all(c.trigger in ("manual", "retry") for c in ledger.published)
