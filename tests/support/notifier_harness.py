"""Running the notifier in a test: settings on the test's schema and topology, in-process.

:func:`running_notifier` does what ``notifier serve`` does (migrate, bootstrap, serve) in the
test's event loop and stops it (draining) when the block ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import asyncpg
from aio_pika.abc import AbstractChannel

from contracts import BrokerNames, JobFinished, encode_event, routing_key
from contracts.events import Envelope, Scope
from notifier.bootstrap import bootstrap
from notifier.config import Settings
from notifier.service import Notifier, migrate_schema
from tests.support.broker import eventually
from tests.support.fake_resend import FakeResend
from tests.support.fake_slack import FakeSlack


def notifier_settings(
    database_url: str,
    amqp_url: str,
    schema: str,
    topology: BrokerNames,
    *,
    resend: FakeResend | None = None,
    slack: FakeSlack | None = None,
    **overrides: Any,
) -> Settings:
    """Settings for this test's schema and broker names, fast timings, nothing configured.

    Emails go to ``resend`` and Slack messages to ``slack`` when they are given; a provider
    not given stays unconfigured. ``overrides`` (field names) win.
    """
    values: dict[str, Any] = {
        "database_url": database_url,
        "amqp_url": amqp_url,
        "notifier_schema": schema,
        "events_exchange": topology.exchange,
        "ledger_queue": topology.ledger_queue,
        "notifier_queue": topology.notifier_queue,
        "commands_queue": topology.commands_queue,
        "resend_api_key": None,
        "slack_webhook_url": None,
        "cache_revalidate_url": None,
        "email_transport": "resend",
        "admin_base_url": "https://admin.example.test",
        "alert_email_to": "ops@example.test, oncall@example.test",
        "email_from": "ChainSights <alerts@example.test>",
        "notify_max_attempts": 4,
        "notify_timeout": "500ms",
        "notify_backoff_max": "50ms",
        "notify_resume_interval": "1s",
    }
    if resend is not None:
        values |= {"resend_api_key": resend.api_key, "resend_api_url": resend.url}
    if slack is not None:
        values["slack_webhook_url"] = slack.webhook_url
    values.update(overrides)
    return Settings(**values)


def scoped(event: JobFinished, scope: Scope | None) -> JobFinished:
    """``event`` saying it covered ``scope`` (every active DAO, a subset, or None: unknown)."""
    return event.model_copy(update={"payload": event.payload.model_copy(update={"scope": scope})})


@contextlib.asynccontextmanager
async def running_notifier(settings: Settings) -> AsyncIterator[Notifier]:
    """Yield a notifier serving in this loop (health on a free port); drain it on exit."""
    await migrate_schema(settings.database_url, settings.notifier_schema)
    stop = asyncio.Event()
    ready: asyncio.Future[Notifier] = asyncio.get_running_loop().create_future()
    async with bootstrap(settings) as notifier:
        task = asyncio.create_task(
            notifier.serve(stop, port=0, on_ready=lambda n: ready.set_result(n))
        )
        waiting: list[asyncio.Future[Any]] = [task, ready]
        done, _ = await asyncio.wait(waiting, timeout=15, return_when="FIRST_COMPLETED")
        if task in done:
            task.result()
        assert ready.done(), "the notifier did not start within 15s"
        try:
            yield notifier
        finally:
            stop.set()
            await task


async def publish(channel: AbstractChannel, topology: BrokerNames, event: Envelope) -> None:
    """Publish ``event`` on the test's exchange as a producer would (mandatory, confirmed)."""
    exchange = await channel.get_exchange(topology.exchange)
    await exchange.publish(encode_event(event), routing_key(event), mandatory=True)


async def publish_raw(
    channel: AbstractChannel, topology: BrokerNames, body: bytes, key: str
) -> None:
    exchange = await channel.get_exchange(topology.exchange)
    await exchange.publish(aio_pika.Message(body=body), key, mandatory=True)


async def deliveries(database_url: str, schema: str) -> list[dict[str, Any]]:
    """Every delivery record of ``schema``, as dicts, in (channel, kind) order."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            f'SELECT * FROM "{schema}".deliveries ORDER BY created_at, channel, kind'
        )
    finally:
        await conn.close()
    return [dict(r) for r in rows]


async def settled(
    database_url: str, schema: str, count: int, timeout_s: float = 20.0
) -> list[dict[str, Any]]:
    """Wait until ``count`` records exist and none is pending; return them."""

    async def probe() -> list[dict[str, Any]]:
        return await deliveries(database_url, schema)

    return await eventually(
        probe,
        lambda rows: len(rows) >= count and all(r["state"] != "pending" for r in rows),
        timeout_s=timeout_s,
    )
