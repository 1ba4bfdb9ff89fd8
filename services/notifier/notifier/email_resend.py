"""Email through Resend with its Python SDK, on an aiohttp client of ours.

The SDK keeps its configuration in module globals (``resend.api_key``, ``resend.api_url``,
``resend.default_async_http_client``, read on every request), so :func:`configure_resend` sets
them once, from bootstrap, and gives back a function that restores them. Each send passes
``idempotency_key`` in ``SendOptions``, which the SDK sends as the ``Idempotency-Key`` header:
Resend keeps a key for 24 hours and answers a repeat with the first email, so a resend after a
crash or a lost answer never mails the admin twice.

The SDK raises ``ResendError`` with the HTTP status as ``code``, the API's error ``name`` as
``error_type`` and the response headers, which is all :func:`classify_resend_error` needs
(Retry-After included). A transport fault (timeout, dropped connection) comes back from the
SDK as code 500 ``HttpClientError``: the outcome is unknown, so it is retried with the same key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast
from zoneinfo import ZoneInfo

import aiohttp
import resend
from resend.exceptions import ResendError

from contracts.events import Channel
from notifier.alert import Alert
from notifier.rendering import render_email
from notifier.transport import DeliveryFailed, parse_retry_after, without_secrets

# From https://resend.com/docs/api-reference/errors: these 4xx types are worth a retry (the
# first is a per-second rate limit, the second an identical request still in flight).
_RETRYABLE_TYPES = {"rate_limit_exceeded", "concurrent_idempotent_requests"}
# A quota is gone until tomorrow or next month: retrying in seconds only burns attempts.
_QUOTA_TYPES = {"daily_quota_exceeded", "monthly_quota_exceeded"}


class AiohttpResendClient(resend.AsyncHTTPClient):
    """The SDK's async HTTP client interface on one shared ``aiohttp.ClientSession``."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        json: dict[str, object] | list[object] | None = None,
        files: dict[str, Any] | None = None,
        data: dict[str, str] | None = None,
    ) -> tuple[bytes, int, Mapping[str, str]]:
        """Return the body, status and headers (lower-case names). Raises ``ConnectionError``."""
        if files is not None:
            # Our emails carry no attachments; the SDK only passes files for those.
            raise ValueError("attachments are not supported by this HTTP client")
        try:
            async with self._session.request(
                method.upper(),
                url,
                headers=dict(headers),
                json=json if data is None else None,
                data=data,
            ) as response:
                body = await response.read()
                return body, response.status, {k.lower(): v for k, v in response.headers.items()}
        except aiohttp.ClientError as exc:
            # The SDK turns this into a code-500 ResendError carrying this text.
            raise ConnectionError(f"request to Resend failed: {exc!r}") from exc


def configure_resend(
    api_key: str, api_url: str, client: resend.AsyncHTTPClient
) -> Callable[[], None]:
    """Point the SDK's globals at ``api_url`` with ``api_key`` and ``client``.

    Returns a function that puts the previous values back (bootstrap calls it on exit).
    """
    previous = (resend.api_key, resend.api_url, resend.default_async_http_client)
    resend.api_key = api_key
    resend.api_url = api_url.rstrip("/")
    resend.default_async_http_client = client

    def restore() -> None:
        resend.api_key, resend.api_url, resend.default_async_http_client = previous

    return restore


def classify_resend_error(exc: ResendError) -> DeliveryFailed:
    """Return the delivery failure for an SDK error: retryable or not, and how long to wait."""
    try:
        status = int(exc.code)
    except (TypeError, ValueError):
        status = 500
    error_type = str(exc.error_type or "")
    if status == 429:
        retryable = error_type not in _QUOTA_TYPES
    elif status == 409:
        retryable = error_type == "concurrent_idempotent_requests"
    else:
        retryable = status >= 500 or error_type in _RETRYABLE_TYPES
    headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
    # An answer may quote the request back; the key must not reach the stored error.
    message = without_secrets(str(exc.message), [str(resend.api_key or "")])
    return DeliveryFailed(
        f"Resend {status} {error_type}: {message}",
        retryable=retryable,
        retry_after_s=parse_retry_after(headers.get("retry-after")) if retryable else None,
    )


class ResendTransport:
    """Sends alert emails with ``resend.Emails.send_async`` (configure the SDK first), their
    moments in ``zone``."""

    channel: Channel = "email"
    provider = "resend"

    def __init__(self, sender: str, recipients: list[str], *, zone: ZoneInfo) -> None:
        self._sender = sender
        self._recipients = recipients
        self._zone = zone

    async def send(self, alert: Alert, idempotency_key: str) -> str | None:
        """Send the email; return Resend's email id. Raises ``DeliveryFailed``.

        Idempotent for 24 hours per ``idempotency_key``.
        """
        email = render_email(alert, self._zone)
        params = cast(
            resend.Emails.SendParams,
            {
                "from": self._sender,
                "to": self._recipients,
                "subject": email.subject,
                "html": email.html,
                "text": email.text,
            },
        )
        options = cast(resend.Emails.SendOptions, {"idempotency_key": idempotency_key})
        try:
            response = await resend.Emails.send_async(params, options)
        except ResendError as exc:
            raise classify_resend_error(exc) from exc
        email_id = response.get("id") if isinstance(response, Mapping) else None
        return str(email_id) if email_id else None
