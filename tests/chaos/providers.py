"""The fake Resend and Slack of the campaign: they keep every email they took, and can fail
or hold a request.

An inbox is what is counted. Every request the fake Resend answers 2xx (or holds until the
sender is killed: a provider that got the request may well have sent it) is an email taken;
requests under the same ``Idempotency-Key`` are one email (Resend answers a retry with the
first email), and every request without a key is an email of its own. Each email is
attributed to its job and outcome from its content (the admin link carries the job id, the
subject says what happened), so the campaign can assert exactly one email per outcome and
count any second email for the same (job, outcome) as a duplicate, whatever its key said.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from dataclasses import dataclass
from types import TracebackType

from aiohttp import web

from tests.support.fake_resend import FakeResend, Recorded, resend_error
from tests.support.fake_slack import FakeSlack

_JOB_LINK = re.compile(
    r"/admin/jobs/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
)

OUTCOME_OF_EVENT = {"JobFinished": "finished", "JobAbandoned": "abandoned", "JobMissed": "missed"}
"""The outcome an outcome event's email reports (success, warning, recovered and failure
are four ways to report one finished run: two of them for one run are a duplicate)."""


def outcome_of_subject(subject: str) -> str:
    """``abandoned``, ``missed`` or ``finished``, from an alert email's subject."""
    if " abandoned (no progress" in subject:
        return "abandoned"
    if " missed its " in subject:
        return "missed"
    return "finished"


@dataclass(frozen=True)
class Email:
    """One email taken: the job its link names (None when none), its outcome, its key."""

    job_id: str | None
    outcome: str
    key: str | None
    subject: str


def email_of(request: Recorded) -> Email:
    """The :class:`Email` a ``POST /emails`` request carries."""
    body = request.json if isinstance(request.json, dict) else {}
    subject = str(body.get("subject", ""))
    found = _JOB_LINK.search(f"{body.get('text', '')} {body.get('html', '')}")
    return Email(
        found.group(1) if found else None,
        outcome_of_subject(subject),
        request.header("Idempotency-Key"),
        subject,
    )


class CountingResend(FakeResend):
    """A :class:`FakeResend` that keeps every email it took; answers 500 to every request
    while ``failing``; and, once :meth:`hold_next` is called, holds the next request until
    :meth:`release` (scripted replies still come first)."""

    def __init__(self, api_key: str) -> None:
        super().__init__(api_key)
        self.failing = False
        self.taken: list[Email] = []
        self._hold: asyncio.Event | None = None
        self._held: asyncio.Event | None = None
        self.holding = asyncio.Event()

    def hold_next(self) -> None:
        """Hold the next request: it is taken (an email) but not answered until released."""
        self._hold = asyncio.Event()
        self.holding.clear()

    def release(self) -> None:
        """Let a held request be answered (its sender is usually dead by then)."""
        if self._held is not None:
            self._held.set()

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
        await super().__aexit__(t, e, tb)

    async def default_reply(self, request: Recorded) -> web.StreamResponse:
        if self.failing:
            return web.json_response(
                resend_error(500, "internal_server_error", "chaos: provider down").json,
                status=500,
            )
        hold, self._hold = self._hold, None
        if hold is not None:
            self._held = hold
            self.taken.append(email_of(request))
            self.holding.set()
            await hold.wait()
            return web.json_response({"id": "email-held"})
        response = await super().default_reply(request)
        if response.status < 300:
            self.taken.append(email_of(request))
        return response

    def inbox(self) -> Counter[tuple[str | None, str]]:
        """Emails per (job id, outcome) as an inbox shows them: one per key, one per
        request without a key."""
        keys: set[str] = set()
        inbox: Counter[tuple[str | None, str]] = Counter()
        for email in self.taken:
            if email.key is not None:
                if email.key in keys:
                    continue
                keys.add(email.key)
            inbox[(email.job_id, email.outcome)] += 1
        return inbox

    def emails_sent(self) -> int:
        """Distinct emails taken (an inbox would show this many)."""
        return sum(self.inbox().values())


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
