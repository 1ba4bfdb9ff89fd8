"""The fake Resend and Slack of the campaign: they count what they accepted, and can fail.

Counting what a provider *accepted* (answered 2xx with a new email) rather than what it was
sent is what tells a retry under the same ``Idempotency-Key`` (harmless: Resend answers it
with the first email) from a real duplicate (a second email in the admin's inbox).
"""

from __future__ import annotations

import json
from collections import Counter

from aiohttp import web

from tests.support.fake_resend import FakeResend, Recorded, resend_error
from tests.support.fake_slack import FakeSlack


class CountingResend(FakeResend):
    """A :class:`FakeResend` that counts accepted emails per idempotency key, and answers
    500 to every request while ``failing`` (scripted replies still come first)."""

    def __init__(self, api_key: str) -> None:
        super().__init__(api_key)
        self.failing = False
        self.accepted: Counter[str] = Counter()
        self._seen: set[str] = set()

    async def default_reply(self, request: Recorded) -> web.StreamResponse:
        if self.failing:
            return web.json_response(
                resend_error(500, "internal_server_error", "chaos: provider down").json,
                status=500,
            )
        response = await super().default_reply(request)
        key = request.header("Idempotency-Key") or f"no-key:{len(self.requests)}"
        if response.status < 300 and key not in self._seen:
            self._seen.add(key)
            self.accepted[key] += 1
        elif response.status < 300 and key.startswith("no-key:"):
            self.accepted[key] += 1
        return response

    def emails_sent(self) -> int:
        """Distinct emails the provider accepted (an inbox would show this many)."""
        return sum(self.accepted.values())

    def duplicate_emails(self) -> int:
        """Emails beyond the first per (job, kind): a key is ``{job_id}/{kind}``, and an email
        without a key is counted against the job whose id its body holds."""
        per_outcome: Counter[str] = Counter()
        for key, count in self.accepted.items():
            per_outcome[key] += count
        return sum(count - 1 for count in per_outcome.values() if count > 1)


class CountingSlack(FakeSlack):
    """A :class:`FakeSlack` that counts accepted messages per job id, and answers 500 while
    ``failing``."""

    def __init__(self) -> None:
        super().__init__()
        self.failing = False
        self.accepted_bodies: list[str] = []

    async def default_reply(self, request: Recorded) -> web.StreamResponse:
        if self.failing:
            return web.Response(status=500, text="chaos: webhook down")
        self.accepted_bodies.append(json.dumps(request.json))
        return web.Response(text="ok")

    def accepted_for(self, job_id: str) -> int:
        """How many accepted messages mention ``job_id`` (every alert links to its job)."""
        return sum(job_id in body for body in self.accepted_bodies)
