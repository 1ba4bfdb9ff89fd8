"""What every delivery channel implements, and the one error it raises.

A transport sends one rendered alert and returns the provider's message id (or None when the
provider gives none). It raises :class:`DeliveryFailed` saying whether trying again can help
and, when the provider said so, after how long; anything else it raises is a bug.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol

from contracts.events import Channel
from notifier.alert import Alert


class DeliveryFailed(Exception):
    """One attempt did not deliver; ``retryable`` says whether the same request may succeed.

    ``retry_after_s`` is the provider's ``Retry-After`` when it sent one.
    """

    def __init__(self, message: str, *, retryable: bool, retry_after_s: float | None = None):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class Transport(Protocol):
    """Sends alerts over one channel; see the module docstring for the contract."""

    channel: Channel
    provider: str

    async def send(self, alert: Alert, idempotency_key: str) -> str | None:
        """Deliver ``alert``; return the provider's id. Raises :class:`DeliveryFailed`."""
        ...


def without_secrets(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret in ``secrets`` (longest first) replaced by ``***``: a provider
    may quote a request back (its URL, its key) in an error, which is stored and published."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Return the seconds a ``Retry-After`` header asks to wait, or None if absent or unreadable.

    The header is either a number of seconds or an HTTP date (RFC 9110, section 10.2.3);
    a date in the past means "now" (0).
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def http_status_failure(
    provider: str, status: int, detail: str, retry_after: str | None
) -> DeliveryFailed:
    """Classify an HTTP error answer: 429 and 5xx are worth retrying, other 4xx are not."""
    retryable = status == 429 or status >= 500
    return DeliveryFailed(
        f"{provider} answered {status}: {detail}".strip().rstrip(":"),
        retryable=retryable,
        retry_after_s=parse_retry_after(retry_after) if retryable else None,
    )
