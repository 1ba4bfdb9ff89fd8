"""The three services as their real console scripts, against the real RabbitMQ and Postgres.

Resend, Slack and the Snapshot hub are loopback HTTP servers that record what they received.
One stack serves the module's runs in order: a completed run with failures, a failed run, a
run whose worker is SIGKILLed mid-run, and then the check that every event of every run is
in the ledger exactly once.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aio_pika
import aiohttp
import pytest
import pytest_asyncio

from contracts import parse_event
from tests.harness.ports import ReservedPort
from tests.harness.processes import SCRIPTS, ServiceProcess, wait_http_ok
from tests.harness.scratch import drop_schemas, remove_topology, service_env, topology_named
from tests.support.broker import drain, eventually
from tests.support.fake_resend import FakeResend
from tests.support.fake_slack import FakeSlack
from tests.support.ledger_web import JOB_LOG_STORY_FIELDS
from tests.support.services import ServiceUrls
from tests.support.snapshot_hub import Fault, HubSpace, SnapshotHub, hub_proposal

pytestmark = pytest.mark.asyncio(loop_scope="module")

PASSWORD = "e2e-admin-password"
DAO_IDS = [f"dao-{n:02d}" for n in range(1, 21)]


def space_of(dao_id: str) -> str:
    return f"{dao_id}.eth"


def hub_spaces() -> list[HubSpace]:
    now = int(time.time())
    return [
        HubSpace(
            space_of(dao_id),
            [
                hub_proposal(space_of(dao_id), f"{dao_id}-p{k}", created=now - k * 6 * 86_400)
                for k in range(1, 6)
            ],
            followers_count=500,
        )
        for dao_id in DAO_IDS
    ]


@dataclass
class Stack:
    env: dict[str, str]
    api: str
    hub: SnapshotHub
    resend: FakeResend
    slack: FakeSlack
    ledger: ServiceProcess
    notifier: ServiceProcess
    worker: ServiceProcess
    tap: aio_pika.abc.AbstractQueue

    async def get(self, path: str) -> Any:
        headers = {"Authorization": f"Bearer {PASSWORD}"}
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.api + path, headers=headers) as response,
        ):
            assert response.status == 200, await response.text()
            return await response.json()

    def cli(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SCRIPTS / argv[0]), *argv[1:]],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )

    async def trigger_and_wait(self, *, until: tuple[str, ...] = ("completed", "failed")) -> Any:
        known = {job["id"] for job in (await self.get("/api/admin/job-logs?limit=100"))["data"]}
        request_id = (await asyncio.to_thread(self.cli, "recalculator", "trigger")).stdout
        assert uuid.UUID(request_id.strip())

        async def new_job() -> Any:
            jobs = (await self.get("/api/admin/job-logs?limit=100"))["data"]
            fresh = [job for job in jobs if job["id"] not in known]
            return fresh[0] if fresh else None

        def finished(job: Any) -> bool:
            return bool(job) and job["status"] in until and job["complete"]

        return await eventually(new_job, finished, timeout_s=60, interval_s=0.3)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def stack(
    services: ServiceUrls, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    unique = uuid.uuid4().hex[:8]
    logs = tmp_path_factory.mktemp("e2e-logs")
    daos_file = logs / "daos.json"
    daos_file.write_text(
        json.dumps([{"id": d, "name": f"DAO {d}", "snapshot_space": space_of(d)} for d in DAO_IDS])
    )
    schemas = (f"e2e_{unique}_recalc", f"e2e_{unique}_ledger", f"e2e_{unique}_notifier")
    topology = topology_named(f"e2e.{unique}")
    connection = await aio_pika.connect_robust(services.amqp_url)
    async with (
        SnapshotHub(hub_spaces(), hang_s=30) as hub,
        FakeResend() as resend,
        FakeSlack() as slack,
        ReservedPort() as http_reserved,
        ReservedPort() as notifier_reserved,
        ReservedPort() as worker_reserved,
    ):
        http_port, notifier_port = http_reserved.port, notifier_reserved.port
        worker_port = worker_reserved.port
        env = {
            **service_env(services.database_url, services.amqp_url, topology),
            "RECALC_SCHEMA": schemas[0],
            "LEDGER_SCHEMA": schemas[1],
            "NOTIFIER_SCHEMA": schemas[2],
            "LOG_FORMAT": "text",
            "ADMIN_PASSWORD": PASSWORD,
            "ADMIN_BASE_URL": "https://admin.example.test",
            "HTTP_PORT": str(http_port),
            "GOVERNANCE_SOURCE": "snapshot",
            "SNAPSHOT_HUB_URL": hub.url,
            "DAO_TIMEOUT": "1s",
            "DAO_RETRIES": "2",
            "DAO_RETRY_BACKOFF": "100ms",
            "JOB_STALE_AFTER": "6s",
            "WATCHDOG_INTERVAL": "1s",
            "WATCHDOG_SETTLE": "1s",
            "RESEND_API_KEY": resend.api_key,
            "RESEND_API_URL": resend.url,
            "ALERT_EMAIL_TO": "admin@example.test",
            "SLACK_WEBHOOK_URL": slack.webhook_url,
            "EMAIL_TRANSPORT": "resend",
            "NOTIFY_TIMEOUT": "2s",
            "CACHE_REVALIDATE_URL": "",
        }
        ledger = ServiceProcess(
            "job-ledger", ["job-ledger", "serve", "--host", "127.0.0.1"], env, logs
        )
        notifier = ServiceProcess(
            "notifier", ["notifier", "serve", "--port", str(notifier_port)], env, logs
        )
        worker = ServiceProcess(
            "worker", ["recalculator", "worker"], {**env, "HEALTH_PORT": str(worker_port)}, logs
        )
        # Every event as published, to compare with what the ledger holds.
        channel = await connection.channel()
        await channel.declare_exchange(env["EVENTS_EXCHANGE"], "topic", durable=True)
        tap = await channel.declare_queue(exclusive=True)
        await tap.bind(env["EVENTS_EXCHANGE"], routing_key="#")
        stack = Stack(
            env, f"http://127.0.0.1:{http_port}", hub, resend, slack, ledger, notifier, worker, tap
        )
        await asyncio.to_thread(stack.cli, "recalculator", "daos", "import", str(daos_file))
        try:
            for process in (ledger, notifier, worker):
                await process.start()
            await wait_http_ok(stack.api + "/readyz", ledger)
            await wait_http_ok(f"http://127.0.0.1:{notifier_port}/readyz", notifier)
            await wait_http_ok(f"http://127.0.0.1:{worker_port}/readyz", worker)
            yield stack
        finally:
            for process in (worker, notifier, ledger):
                await process.stop()
            await connection.close()
            await drop_schemas(services.database_url, *schemas)
            await remove_topology(services.amqp_url, topology)


def fail(hub: SnapshotHub, dao_ids: list[str], faults: list[Fault]) -> None:
    for dao_id in DAO_IDS:
        hub.behave(space_of(dao_id))
    for index, dao_id in enumerate(dao_ids):
        hub.misbehave(space_of(dao_id), faults[index % len(faults)])


async def emails_for(stack: Stack, job_id: str, count: int = 1) -> list[dict[str, Any]]:
    def mine() -> list[dict[str, Any]]:
        return [
            r.json
            for r in stack.resend.requests
            if (r.header("Idempotency-Key") or "").startswith(job_id)
        ]

    async def probe() -> list[dict[str, Any]]:
        return mine()

    return await eventually(probe, lambda found: len(found) >= count, timeout_s=30)


async def slack_for(stack: Stack, job_id: str) -> str:
    async def probe() -> list[str]:
        texts = [stack.slack.message_text(i) for i in range(len(stack.slack.messages))]
        return [t for t in texts if job_id in t]

    return (await eventually(probe, lambda found: len(found) >= 1, timeout_s=30))[0]


async def test_twenty_daos_with_six_failing_complete_with_a_green_email_and_a_slack_alert(
    stack: Stack,
) -> None:
    failing = DAO_IDS[:6]
    fail(stack.hub, failing, [Fault.SERVER_ERROR, Fault.MALFORMED_JSON, Fault.WRONG_SHAPE])

    job = await stack.trigger_and_wait()

    assert set(JOB_LOG_STORY_FIELDS) <= set(job)
    assert job["jobName"] == "weekly-gvs-recalculation"
    assert (job["status"], job["daosProcessed"], job["daosTotal"]) == ("completed", 14, 20)
    assert job["cacheInvalidated"] is False
    assert job["completedAt"] >= job["startedAt"]
    assert isinstance(job["durationMs"], int) and job["durationMs"] >= 0
    assert sorted(e["daoId"] for e in job["errors"]) == failing  # in sequence order
    assert {"daoId", "daoName", "error"} == set(job["errors"][0])
    assert {e["daoName"] for e in job["errors"]} == {f"DAO {d}" for d in failing}

    [email] = await emails_for(stack, job["id"])
    assert email["to"] == ["admin@example.test"]
    assert email["subject"].startswith("✅ Weekly GVS Recalculation completed: 14/20 DAOs")
    assert "#15803d" in email["html"] and "#b91c1c" not in email["html"]
    slack = await slack_for(stack, job["id"])
    assert "DAO dao-01" in slack and "6" in slack


async def test_twenty_daos_with_fifteen_failing_fail_with_a_red_email_listing_them(
    stack: Stack,
) -> None:
    failing = DAO_IDS[:15]
    fail(stack.hub, failing, [Fault.SERVER_ERROR, Fault.MALFORMED_JSON])

    job = await stack.trigger_and_wait()

    assert (job["status"], job["daosProcessed"], job["daosTotal"]) == ("failed", 5, 20)
    assert len(job["errors"]) == 15
    [email] = await emails_for(stack, job["id"])
    assert email["subject"] == (
        "🚨 ChainSights Alert: Weekly GVS Recalculation failed (15 of 20 DAOs failed)"
    )
    assert "#b91c1c" in email["html"]
    for dao_id in failing:
        assert f"DAO {dao_id}" in email["html"]
    assert f"https://admin.example.test/admin/jobs/{job['id']}" in email["html"]
    slack = await slack_for(stack, job["id"])
    assert "DAO dao-15" in slack


async def test_a_worker_killed_mid_run_is_reported_abandoned_with_a_red_email(
    stack: Stack,
) -> None:
    fail(stack.hub, DAO_IDS, [Fault.HANG])
    await asyncio.to_thread(stack.cli, "recalculator", "trigger")

    async def running_job() -> Any:
        jobs = (await stack.get("/api/admin/job-logs?limit=1"))["data"]
        return jobs[0] if jobs and jobs[0]["status"] == "running" else None

    job = await eventually(running_job, bool, timeout_s=30)
    await stack.worker.kill()

    async def that_job() -> Any:
        return (await stack.get(f"/api/admin/job-logs?id={job['id']}"))["data"]

    abandoned = await eventually(
        that_job, lambda j: _one(j)["status"] == "failed", timeout_s=40, interval_s=0.5
    )
    assert _one(abandoned)["completedAt"] is not None
    [email] = await emails_for(stack, job["id"])
    assert email["subject"].startswith("🚨 ChainSights Alert: Weekly GVS Recalculation abandoned")
    assert "#b91c1c" in email["html"]
    slack = await slack_for(stack, job["id"])
    assert "abandoned" in slack.lower()
    events = (await stack.get(f"/api/admin/job-logs/{job['id']}/events"))["data"]
    types = [e["eventType"] for e in events]
    assert types[0] == "JobStarted"
    assert "JobAbandoned" in types and "JobFinished" not in types


def _one(data: Any) -> Any:
    return data[0] if isinstance(data, list) else data


async def test_every_event_of_every_run_is_in_the_ledger_exactly_once(stack: Stack) -> None:
    published = [parse_event(m.body) for m in await drain(stack.tap, quiet_s=2)]
    by_job: dict[str, set[str]] = {}
    for event in published:
        if event.sequence is not None:
            by_job.setdefault(str(event.job_id), set()).add(str(event.event_id))
    assert len(by_job) == 3, "three runs were started"
    for job_id, event_ids in by_job.items():
        stored = (await stack.get(f"/api/admin/job-logs/{job_id}/events"))["data"]
        numbered = [e for e in stored if e["sequence"] is not None]
        assert sorted(e["eventId"] for e in numbered) == sorted(event_ids)
        assert [e["sequence"] for e in numbered] == list(range(len(numbered)))
