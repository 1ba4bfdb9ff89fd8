"""Email into a folder instead of a provider, for local runs and demos (``EMAIL_TRANSPORT=file``).

Each alert becomes ``<job_id>-<kind>.html``, ``.txt`` and ``.json`` (from, to, subject and the
idempotency key). Writing again overwrites the same three files, so a resend is harmless.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from zoneinfo import ZoneInfo

from contracts.events import Channel
from notifier.alert import Alert
from notifier.rendering import RenderedEmail, render_email
from notifier.transport import DeliveryFailed


class FileEmailTransport:
    """Writes each email's parts into ``folder`` (created on first use), moments in ``zone``."""

    channel: Channel = "email"
    provider = "file"

    def __init__(self, folder: Path, sender: str, recipients: list[str], *, zone: ZoneInfo) -> None:
        self._folder = folder
        self._sender = sender
        self._recipients = recipients
        self._zone = zone

    async def send(self, alert: Alert, idempotency_key: str) -> str | None:
        """Write the email; return the path of its HTML part. Idempotent (overwrites).

        Raises ``DeliveryFailed`` (retryable: a full disk may clear) when a file cannot be
        written.
        """
        email = render_email(alert, self._zone)
        stem = f"{alert.job_id}-{alert.kind}"
        try:
            # Blocking file I/O stays off the event loop.
            await asyncio.to_thread(self._write, stem, email, idempotency_key)
        except OSError as exc:
            message = f"cannot write {stem} in {self._folder}: {exc}"
            raise DeliveryFailed(message, retryable=True) from exc
        return str(self._folder / f"{stem}.html")

    def _write(self, stem: str, email: RenderedEmail, idempotency_key: str) -> None:
        self._folder.mkdir(parents=True, exist_ok=True)
        headers = {
            "from": self._sender,
            "to": self._recipients,
            "subject": email.subject,
            "idempotency_key": idempotency_key,
        }
        (self._folder / f"{stem}.html").write_text(email.html, encoding="utf-8")
        (self._folder / f"{stem}.txt").write_text(email.text, encoding="utf-8")
        # The header file last: its presence says the other two are complete.
        (self._folder / f"{stem}.json").write_text(
            json.dumps(headers, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
