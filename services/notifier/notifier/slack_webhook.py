"""Slack alerts through an incoming webhook, with aiohttp.

Slack answers 200 ``ok``, or an error as plain text (``invalid_payload``,
``channel_not_found``…; https://api.slack.com/messaging/webhooks#handling_errors). Only 429
(after ``Retry-After``) and 5xx are worth a retry. A webhook has no idempotency key: a retry
after a lost answer can post twice, which is why the dispatcher records the outcome right
after the answer (see the service README).
"""

from __future__ import annotations

from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import aiohttp

from contracts.events import Channel
from notifier.alert import Alert
from notifier.slack_message import build_slack_payload
from notifier.transport import DeliveryFailed, http_status_failure, without_secrets

_SECRET_PART_MIN = 6
"""A webhook's path segments (after ``/services``) this long or longer are its key."""


class SlackWebhookTransport:
    """Posts Block Kit messages to one webhook URL (a secret: never logged), moments in ``zone``."""

    channel: Channel = "slack"
    provider = "slack"

    def __init__(self, session: aiohttp.ClientSession, webhook_url: str, *, zone: ZoneInfo) -> None:
        self._session = session
        self._url = webhook_url
        self._zone = zone
        self._secrets = webhook_secrets(webhook_url)

    async def send(self, alert: Alert, idempotency_key: str) -> str | None:
        """Post the message; return None (Slack gives no id). Raises ``DeliveryFailed``, whose
        message never holds the webhook's URL or any part of its key.

        Not idempotent: ``idempotency_key`` is only logged by the caller.
        """
        try:
            return await self._post(alert)
        except DeliveryFailed as exc:
            exc.message = without_secrets(exc.message, self._secrets)
            exc.args = (exc.message,)
            raise

    async def _post(self, alert: Alert) -> str | None:
        try:
            async with self._session.post(
                self._url, json=build_slack_payload(alert, self._zone)
            ) as response:
                if response.status == 200:
                    return None
                detail = (await response.text())[:500]
                raise http_status_failure(
                    "Slack", response.status, detail, response.headers.get("Retry-After")
                )
        except aiohttp.ClientError as exc:
            # Connection refused or dropped mid-answer: unknown outcome, worth a retry.
            message = f"request to Slack failed: {_client_error(exc)}"
            raise DeliveryFailed(message, retryable=True) from None


def _client_error(exc: aiohttp.ClientError) -> str:
    """What went wrong, without the URL many aiohttp errors quote (the webhook's key)."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"{type(exc).__name__}: cannot connect to {exc.host}:{exc.port} ({exc.strerror})"
    return type(exc).__name__


def webhook_secrets(url: str) -> list[str]:
    """What of a webhook URL must never be shown: the URL, its path and query, and each long
    path segment (the key's parts, which a provider might quote alone)."""
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/")[2:] if len(s) >= _SECRET_PART_MIN]
    return [url, parts.path, parts.query, *segments]
