"""The leaked-secret sweep: the real services with broken providers and bad settings, and every
configured secret searched for in everything they produce.

Start refusals (a bad ``DATABASE_URL``, ``AMQP_URL``, ``SLACK_WEBHOOK_URL`` or
``RESEND_API_URL``) must say what is wrong in one stderr line without the secret. At run time
a Slack and a Resend that quote the request back (its URL, its API key) in their errors make
every alert fail; then no log line, stored row, published event, page or API answer of the
notifier and the ledger may hold a secret.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from yarl import URL

from contracts import encode_event
from contracts.events import routing_key
from tests.harness.processes import SCRIPTS, ServiceProcess, run_command, running, wait_http_ok
from tests.harness.scratch import scratch_schema
from tests.harness.stack import Stack
from tests.integration.test_notifier_process import consuming, notifier_env
from tests.support.broker import drain, eventually, tap_exchange
from tests.support.ledger import job_events
from tests.support.notifier_harness import settled
from tests.support.outcomes import job_finished

SLACK_KEY = "sweepSlackKey7f3e9a1c"
SLACK_PATH = f"/services/TSWEEP01/BSWEEP02/{SLACK_KEY}"
RESEND_KEY = "re_sweep_key_4c2b9e07d1"
DB_PASSWORD = "sweepDbPass1x9q"
DB_QUERY_PASSWORD = "sweepDbPass2y8r"
AMQP_PASSWORD = "sweepAmqpPass3z7"
ADMIN_PASSWORD = "sweep-admin-password-81c4"
API_TOKEN = "sweep-api-token-6d2e0b"
SESSION_SECRET = "sweep-session-secret-3a9f"
SECRETS = [
    SLACK_KEY,
    RESEND_KEY,
    DB_PASSWORD,
    DB_QUERY_PASSWORD,
    AMQP_PASSWORD,
    ADMIN_PASSWORD,
    API_TOKEN,
    SESSION_SECRET,
]


def leaked(where: str, text: str) -> list[str]:
    return [f"{secret} in {where}" for secret in SECRETS if secret in text]


@pytest.fixture
async def hostile() -> AsyncIterator[tuple[str, list[str]]]:
    """A Slack and a Resend on one loopback server that fail every request, quoting it back
    (path, query, Authorization) in their error; yields its URL and what it answered."""
    answered: list[str] = []

    async def slack(request: web.Request) -> web.Response:
        answered.append(text := f"no_service: {request.path_qs} was not found")
        return web.Response(status=404, text=text)

    async def resend(request: web.Request) -> web.Response:
        key = request.headers.get("Authorization", "")
        answered.append(message := f"API key is invalid: {key} for {request.path_qs}")
        return web.json_response(
            {"statusCode": 401, "name": "validation_error", "message": message}, status=401
        )

    app = web.Application()
    app.router.add_post(SLACK_PATH, slack)
    app.router.add_post("/emails", resend)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", answered
    finally:
        await runner.cleanup()


def with_password(database_url: str, *, query: bool) -> str:
    """``database_url`` carrying a password (trust auth ignores it) in the user info or query."""
    url = URL(database_url)
    if query:
        return str(url.update_query(password=DB_QUERY_PASSWORD))
    return str(url.with_password(DB_PASSWORD))


@pytest.mark.parametrize("service", ["notifier", "job-ledger", "recalculator"])
async def test_a_start_refused_for_a_bad_setting_names_it_without_its_secret(
    stack: Stack, service: str
) -> None:
    closed = stack.port()  # held, so nothing listens there
    bad: list[dict[str, str]] = [
        {"DATABASE_URL": f"postgresql://u:{DB_PASSWORD}@127.0.0.1:{closed}/x"},
        {"DATABASE_URL": f"postgresql://u@127.0.0.1:{closed}/x?password={DB_QUERY_PASSWORD}"},
        {"DATABASE_URL": f"postgresql://u:{DB_PASSWORD}@127.0.0.1:99999/x"},
        {"AMQP_URL": f"amqp://guest:{AMQP_PASSWORD}@127.0.0.1:{closed}/"},
    ]
    if service == "notifier":
        bad += [
            {"SLACK_WEBHOOK_URL": f"hooks.slack.com{SLACK_PATH}"},
            {"SLACK_WEBHOOK_URL": f"https://hooks.slack.com:99999{SLACK_PATH}"},
            {"RESEND_API_URL": f"api.resend.com/{RESEND_KEY}", "RESEND_API_KEY": RESEND_KEY},
        ]
    base = {
        "PATH": "/usr/bin:/bin",
        **stack.env(),
        "ADMIN_PASSWORD": ADMIN_PASSWORD,
        "CONNECT_TIMEOUT": "2s",
        "HEALTH_PORT": "0",
        **{f"{name}_SCHEMA": stack.schema for name in ("NOTIFIER", "LEDGER", "RECALC")},
    }
    argv = [str(SCRIPTS / service), "serve", "--port", "0"]
    if service == "recalculator":
        argv = [str(SCRIPTS / service), "worker"]
    for env in bad:
        code, out, err = await run_command(argv, {**base, **env})
        [name] = [n for n in env if n != "RESEND_API_KEY"]
        said = [line for line in err.splitlines() if not line.startswith("{")]
        assert code == 2 and len(said) == 1, (env, err)
        assert name in said[0] or "Postgres" in said[0] or "RabbitMQ" in said[0], err
        assert leaked("stderr/stdout", err + out) == [], err


async def test_broken_providers_leak_no_secret_to_logs_rows_events_or_pages(
    stack: Stack, tmp_path: Path, hostile: tuple[str, list[str]]
) -> None:
    provider, answered = hostile
    async with scratch_schema(stack.database_url, "sweep_notifier") as notifier_schema:
        notifier = ServiceProcess(
            "notifier",
            [sys.executable, "-m", "notifier", "serve", "--port", "0"],
            notifier_env(
                stack,
                DATABASE_URL=with_password(stack.database_url, query=False),
                NOTIFIER_SCHEMA=notifier_schema,
                SLACK_WEBHOOK_URL=provider + SLACK_PATH,
                RESEND_API_KEY=RESEND_KEY,
                RESEND_API_URL=provider,
                NOTIFY_MAX_ATTEMPTS="2",
            ),
            tmp_path,
        )
        port = stack.port()
        ledger = ServiceProcess(
            "job-ledger",
            ["job-ledger", "serve", "--port", str(port)],
            {
                **stack.ledger_env(),
                "DATABASE_URL": with_password(stack.database_url, query=True),
                "ADMIN_PASSWORD": ADMIN_PASSWORD,
                "ADMIN_API_TOKENS": f"sweep:{API_TOKEN}",
                "SESSION_SECRET": SESSION_SECRET,
            },
            tmp_path,
        )
        tap = await tap_exchange(stack.amqp, stack.topology)
        async with running(notifier, ledger):
            url = f"http://127.0.0.1:{port}"
            await wait_http_ok(f"{url}/readyz", ledger)
            await consuming(stack.amqp, stack.topology.notifier_queue)
            job_id = await publish_a_failed_run(stack)
            await settled(stack.database_url, notifier_schema, 2, timeout_s=30)
            await eventually(
                lambda: notifications(stack.database_url, stack.schema),
                lambda n: n >= 2,
                timeout_s=30,
            )
            pages = await read_pages(url, job_id)
        rows = await every_row(stack.database_url, stack.schema, notifier_schema)
    events = [m.body.decode() for m in await drain(tap)]
    # The providers did quote the secrets: the sweep searches where they could have gone.
    assert any(SLACK_KEY in a for a in answered) and any(RESEND_KEY in a for a in answered)
    assert any("NotificationFailed" in e for e in events)
    assert "failed" in rows and "Slack answered 404" in rows
    found = [
        *leaked("the notifier's log", notifier.log_path.read_text()),
        *leaked("the ledger's log", ledger.log_path.read_text()),
        *leaked("a stored row", rows),
        *leaked("a published event", "\n".join(events)),
        *leaked("a page or answer", pages),
    ]
    assert found == []


async def publish_a_failed_run(stack: Stack) -> str:
    """Publish a failed run of two DAOs (its JobStarted, DAO events and JobFinished)."""
    finished = job_finished(
        "failed", 2, 1, duration_ms=900, cache_invalidated=False, failures=[("D", "x")]
    )
    events = [*job_events(finished.job_id, 3, fail_every=2), finished]
    channel = await stack.amqp.channel()
    exchange = await channel.get_exchange(stack.topology.exchange)
    for event in events:
        await exchange.publish(encode_event(event), routing_key(event), mandatory=True)
    await channel.close()
    return str(finished.job_id)


async def notifications(database_url: str, schema: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval(f'SELECT count(*) FROM "{schema}".job_notifications'))
    finally:
        await conn.close()


async def every_row(database_url: str, *schemas: str) -> str:
    """Every row of every table of ``schemas``, as JSON text, one per line."""
    conn = await asyncpg.connect(database_url)
    try:
        tables = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_schema = ANY($1::text[]) AND table_type = 'BASE TABLE'",
            list(schemas),
        )
        lines = []
        for table in tables:
            name = f'"{table["table_schema"]}"."{table["table_name"]}"'
            lines += [r[0] for r in await conn.fetch(f"SELECT row_to_json(t)::text FROM {name} t")]
        return "\n".join(lines)
    finally:
        await conn.close()


async def read_pages(url: str, job_id: str) -> str:
    """The job's page and history (signed in), its API answers, readiness and metrics."""
    bearer = {"Authorization": f"Bearer {API_TOKEN}"}
    texts = []
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        async with browser.post(
            f"{url}/admin/login", data={"password": ADMIN_PASSWORD}, allow_redirects=False
        ) as response:
            assert response.status == 303
        for path in (f"/admin/jobs/{job_id}", "/admin/jobs", "/readyz", "/metrics"):
            async with browser.get(url + path) as response:
                texts.append(await response.text())
        for path in (f"/api/admin/job-logs?id={job_id}", f"/api/admin/job-logs/{job_id}/events"):
            async with browser.get(url + path, headers=bearer) as response:
                assert response.status == 200
                texts.append(await response.text())
    assert "Slack answered 404" in texts[0], texts[0][:2000]
    await asyncio.sleep(0)
    return "\n".join(texts)
