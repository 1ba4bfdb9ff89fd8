"""One scenario's system: the real ``job-ledger serve`` and ``notifier serve`` on their own
schemas and broker names, with recording Resend and Slack servers in front of the notifier.

The ledger is started on demand, so a scenario can publish what happens while it is down.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import asyncpg
from aio_pika.abc import AbstractChannel, AbstractRobustConnection

from contracts import BrokerNames, encode_event, routing_key
from contracts.events import Envelope
from tests.alerts.scenarios import Scenario
from tests.harness.ports import ReservedPort
from tests.harness.processes import SCRIPTS, ServiceProcess, run_command, wait_http_ok
from tests.harness.scratch import drop_schemas, remove_topology, service_env, topology_named
from tests.support.fake_resend import FakeResend
from tests.support.fake_slack import FakeSlack
from tests.support.services import ServiceUrls

PASSWORD = "alert-truth-table-password"
SLOT_AGO = timedelta(hours=2)
"""How long before the scenario starts its scheduled slot was (the grace is 1 h)."""


@dataclass
class AlertStack:
    """The running services of one scenario and what a test needs to drive and read them."""

    scenario: Scenario
    job_name: str
    topology: BrokerNames
    api: str
    resend: FakeResend
    slack: FakeSlack
    ledger: ServiceProcess
    notifier: ServiceProcess
    amqp: AbstractRobustConnection
    publisher: AbstractChannel

    async def publish(self, event: Envelope) -> None:
        """Publish ``event`` as its producer would: persistent, mandatory, confirmed."""
        exchange = await self.publisher.get_exchange(self.topology.exchange)
        await exchange.publish(encode_event(event), routing_key(event), mandatory=True)

    async def start_ledger(self) -> None:
        await self.ledger.start()
        await wait_http_ok(self.api + "/readyz", self.ledger)

    async def get(self, path: str) -> Any:
        """GET an API path with the Bearer token; the JSON body (any status)."""
        headers = {"Authorization": f"Bearer {PASSWORD}"}
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.api + path, headers=headers) as response,
        ):
            return await response.json()

    async def post(self, path: str) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {PASSWORD}"}
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.api + path, headers=headers) as response,
        ):
            return response.status, await response.json()


def _slot_schedule(now: datetime) -> tuple[str, datetime]:
    """A daily cron expression whose slot was :data:`SLOT_AGO` ago, and that slot."""
    slot = (now - SLOT_AGO).replace(second=0, microsecond=0)
    return f"{slot.minute} {slot.hour} * * *", slot


def _environment(
    services: ServiceUrls,
    scenario: Scenario,
    unique: str,
    http_port: int,
    providers: tuple[FakeResend, FakeSlack],
) -> dict[str, str]:
    topology = _topology(unique)
    resend, slack = providers
    configured = scenario.channels == "configured"
    env = service_env(services.database_url, services.amqp_url, topology)
    env.update(
        LEDGER_SCHEMA=f"alerts_{unique}_ledger",
        NOTIFIER_SCHEMA=f"alerts_{unique}_notifier",
        LOG_FORMAT="text",
        ADMIN_PASSWORD=PASSWORD,
        ADMIN_BASE_URL=f"http://127.0.0.1:{http_port}",
        HTTP_HOST="127.0.0.1",
        HTTP_PORT=str(http_port),
        JOB_NAME=f"truth-{scenario.slug}"[:60].rstrip("-"),
        JOB_SCHEDULE="0 0 * * 1",
        JOB_GRACE="1h",
        JOB_STALE_AFTER="30m",
        WATCHDOG_INTERVAL="500ms",
        WATCHDOG_SETTLE="1s",
        RESEND_API_KEY=resend.api_key if configured else "",
        RESEND_API_URL=resend.url,
        SLACK_WEBHOOK_URL=slack.webhook_url if configured else "",
        EMAIL_TRANSPORT="resend",
        ALERT_EMAIL_TO="admin@example.test",
        CACHE_REVALIDATE_URL="http://127.0.0.1:9/revalidate"
        if scenario.revalidation_configured
        else "",
        NOTIFY_TIMEOUT="2s",
        NOTIFY_BACKOFF_MAX="100ms",
        NOTIFY_RESUME_INTERVAL="1s",
        CONNECT_TIMEOUT="5s",
    )
    if scenario.schedule_slot:
        env["JOB_SCHEDULE"], _ = _slot_schedule(datetime.now(UTC))
    return env


def _topology(unique: str) -> BrokerNames:
    return topology_named(f"alerts.{unique}")


async def _install_ledger_before_the_slot(env: dict[str, str], database_url: str) -> None:
    """Migrate the ledger's schema as if it had been installed an hour before the slot, so
    that its first schedule check judges exactly that slot (earlier ones are none of its
    business)."""
    code, out, err = await run_command([str(SCRIPTS / "job-ledger"), "migrate"], env)
    assert code == 0, out + err
    _, slot = _slot_schedule(datetime.now(UTC))
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            f'UPDATE "{env["LEDGER_SCHEMA"]}".schema_migrations SET applied_at = $1',
            slot - timedelta(hours=1),
        )
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def alert_stack(
    services: ServiceUrls, scenario: Scenario, logs: Path
) -> AsyncIterator[AlertStack]:
    """The notifier running and the ledger ready to start; everything removed afterwards."""
    unique = uuid.uuid4().hex[:8]
    async with (
        FakeResend() as resend,
        FakeSlack() as slack,
        ReservedPort() as http_port,
        ReservedPort() as notifier_port,
    ):
        env = _environment(services, scenario, unique, http_port.port, (resend, slack))
        if scenario.schedule_slot:
            await _install_ledger_before_the_slot(env, services.database_url)
        ledger = ServiceProcess("job-ledger", ["job-ledger", "serve"], env, logs)
        notifier = ServiceProcess(
            "notifier", ["notifier", "serve", "--port", str(notifier_port.port)], env, logs
        )
        amqp = await aio_pika.connect_robust(services.amqp_url)
        stack = AlertStack(
            scenario,
            env["JOB_NAME"],
            _topology(unique),
            env["ADMIN_BASE_URL"],
            resend,
            slack,
            ledger,
            notifier,
            amqp,
            await amqp.channel(publisher_confirms=True),
        )
        try:
            await notifier.start()
            await wait_http_ok(f"http://127.0.0.1:{notifier_port.port}/readyz", notifier)
            yield stack
        finally:
            await notifier.stop()
            await ledger.stop()
            await amqp.close()
            await _remove(services, env, stack.topology)


async def _remove(services: ServiceUrls, env: dict[str, str], topology: BrokerNames) -> None:
    await drop_schemas(services.database_url, env["LEDGER_SCHEMA"], env["NOTIFIER_SCHEMA"])
    await remove_topology(services.amqp_url, topology)
