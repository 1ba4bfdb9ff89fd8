"""The notifier's one composition root: builds every resource from settings, hands them in.

Nothing connects at import time. :func:`bootstrap` opens the pool and the broker connection
(declaring the topology on a channel it closes again), the HTTP session and the transports,
and closes them all in reverse order on exit. The consumer opens its own channels (consuming,
dead letters) when it starts.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping

import aiohttp

from chassis.broker import connect, declare_topology
from chassis.database import create_pool
from chassis.outbox import OutboxRelay
from contracts.events import Channel
from notifier.config import Settings
from notifier.consumer import OutcomeHandler, outcome_consumer
from notifier.dispatcher import Dispatcher
from notifier.email_file import FileEmailTransport
from notifier.email_resend import AiohttpResendClient, ResendTransport, configure_resend
from notifier.intake import Planning
from notifier.retention import notifier_retention
from notifier.retry_policy import RetryPolicy
from notifier.service import Notifier
from notifier.slack_webhook import SlackWebhookTransport
from notifier.transport import Transport

log = logging.getLogger(__name__)


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.notify_max_attempts,
        timeout_s=settings.notify_timeout.total_seconds(),
        backoff_max_s=settings.notify_backoff_max.total_seconds(),
    )


def build_transports(
    settings: Settings, session: aiohttp.ClientSession, stack: contextlib.ExitStack
) -> tuple[dict[Channel, Transport], dict[Channel, str]]:
    """Return the transport per configured channel and the reason per channel that is not.

    Configures the Resend SDK's globals when email goes through Resend (undone by ``stack``).
    Logs one warning per channel that is not configured.
    """
    transports: dict[Channel, Transport] = {}
    skipped: dict[Channel, str] = {}
    if settings.email_transport == "file":
        folder = settings.email_outbox_dir
        transports["email"] = FileEmailTransport(
            folder, settings.email_from, settings.alert_recipients, zone=settings.admin_timezone
        )
        log.info("emails are written to %s (EMAIL_TRANSPORT=file), not sent", folder)
    elif settings.resend_api_key is not None:
        stack.callback(
            configure_resend(
                settings.resend_api_key.get_secret_value(),
                settings.resend_api_url,
                AiohttpResendClient(session),
            )
        )
        transports["email"] = ResendTransport(
            settings.email_from, settings.alert_recipients, zone=settings.admin_timezone
        )
    else:
        skipped["email"] = "RESEND_API_KEY is not set"
    if settings.slack_webhook_url is not None:
        url = settings.slack_webhook_url.get_secret_value()
        transports["slack"] = SlackWebhookTransport(session, url, zone=settings.admin_timezone)
    else:
        skipped["slack"] = "SLACK_WEBHOOK_URL is not set"
    for channel, reason in skipped.items():
        log.warning(
            "%s alerts are not configured (%s): they will be recorded as skipped, not sent",
            channel,
            reason,
            extra={"channel": channel},
        )
    return transports, skipped


@contextlib.asynccontextmanager
async def bootstrap(
    settings: Settings, *, transports: Mapping[Channel, Transport] | None = None
) -> AsyncIterator[Notifier]:
    """Yield a ready-to-serve :class:`Notifier` built from ``settings``; close all on exit.

    ``transports`` replaces the configured ones (every channel not in it is then skipped).
    Raises ``DatabaseUnavailable`` or ``BrokerUnavailable`` when a service does not answer.
    Migrations are the caller's (:func:`notifier.service.migrate_schema`).
    """
    timeout_s = settings.connect_timeout.total_seconds()
    async with contextlib.AsyncExitStack() as stack:
        pool = await create_pool(
            settings.database_url, settings.notifier_schema, timeout_s=timeout_s
        )
        stack.push_async_callback(pool.close)
        connection = await connect(
            settings.amqp_url.get_secret_value(), timeout_s=timeout_s, name="notifier"
        )
        stack.push_async_callback(connection.close)
        topology = settings.topology
        async with await connection.channel() as channel:
            await declare_topology(channel, topology)

        # The request timeout is the dispatcher's; the session's is only a backstop.
        session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=settings.notify_timeout.total_seconds() + 5)
        )
        stack.push_async_callback(session.close)
        sync_stack = stack.enter_context(contextlib.ExitStack())
        if transports is None:
            built, skipped = build_transports(settings, session, sync_stack)
        else:
            built = dict(transports)
            skipped = {c: "no transport given" for c in ("email", "slack") if c not in built}

        relay = OutboxRelay(pool, connection, retention=settings.outbox_retention)
        dispatcher = Dispatcher(
            pool,
            built,
            skipped,
            retry_policy(settings),
            exchange=topology.exchange,
            on_outcome=relay.wake,
            resume_interval_s=settings.notify_resume_interval.total_seconds(),
        )
        planning = Planning(settings.revalidation_configured, settings.admin_base_url)
        consumer = outcome_consumer(
            connection,
            topology.queue(settings.notifier_queue),
            OutcomeHandler(pool, planning, dispatcher),
        )
        retention = notifier_retention(settings, pool)
        yield Notifier(pool, connection, consumer, dispatcher, relay, retention)
