"""Slack alerts through an incoming webhook, with aiohttp.

Slack answers 200 ``ok``, or an error as plain text (``invalid_payload``,
``channel_not_found``…; https://api.slack.com/messaging/webhooks#handling_errors). Only 429
(after ``Retry-After``) and 5xx are worth a retry. A webhook has no idempotency key: a retry
after a lost answer can post twice, which is why the dispatcher records the outcome right
after the answer (see the service README).
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import aiohttp

from contracts.events import Channel
from notifier.alert import Alert
from notifier.slack_message import build_slack_payload
from notifier.transport import DeliveryFailed, http_status_failure


class SlackWebhookTransport:
    """Posts Block Kit messages to one webhook URL (a secret: never logged), moments in ``zone``."""

    channel: Channel = "slack"
    provider = "slack"

    def __init__(self, session: aiohttp.ClientSession, webhook_url: str, *, zone: ZoneInfo) -> None:
        self._session = session
        self._url = webhook_url
        self._zone = zone

    async def send(self, alert: Alert, idempotency_key: str) -> str | None:
        """Post the message; return None (Slack gives no id). Raises ``DeliveryFailed``.

        Not idempotent: ``idempotency_key`` is only logged by the caller.
        """
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
            raise DeliveryFailed(f"request to Slack failed: {exc!r}", retryable=True) from exc
