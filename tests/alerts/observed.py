"""What the recording providers received, read back into alerts: (job, channel, kind), links.

The kind is read from what the admin sees (the email's subject, the Slack header), the job from
the dashboard link in the message, so a wrong subject or a wrong link is caught, not trusted.
Two requests for the same (job, kind) under different idempotency keys are two emails; a
retry under the same key is one.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from tests.support.fake_resend import FakeResend
from tests.support.fake_slack import FakeSlack

# Subject and Slack header openings, most specific first (the templates' wording).
_EMAIL_KINDS = (
    ("completed with warnings", "warning"),
    (" recovered:", "recovered"),
    (" completed:", "success"),
    (" abandoned", "abandoned"),
    (" missed its ", "missed"),
    (" failed", "failure"),
)
_SLACK_KINDS = (
    ("completed with warnings", "warning"),
    (" recovered", "recovered"),
    (" completed", "success"),
    (" abandoned", "abandoned"),
    (" missed its run", "missed"),
    (" failed", "failure"),
)
_JOB_LINK = re.compile(r"/admin/jobs/([0-9a-f-]{36})")
_URL = re.compile(r"https?://[^\s\"'<>|]+")


@dataclass(frozen=True)
class Message:
    """One message the admin received: about ``job_id``, on ``channel``, of ``kind``."""

    job_id: uuid.UUID | None
    channel: str
    kind: str | None
    dedup_key: str
    links: frozenset[str]


def _kind(text: str, table: tuple[tuple[str, str], ...]) -> str | None:
    return next((kind for marker, kind in table if marker in text), None)


def _job(text: str) -> uuid.UUID | None:
    found = {uuid.UUID(m) for m in _JOB_LINK.findall(text)}
    return found.pop() if len(found) == 1 else None


def emails(resend: FakeResend) -> list[Message]:
    """Every email Resend was asked to send, one per idempotency key (or per request)."""
    seen: dict[str, Message] = {}
    for index, request in enumerate(r for r in resend.requests if r.path.endswith("/emails")):
        body: dict[str, Any] = request.json or {}
        content = f"{body.get('html', '')}\n{body.get('text', '')}"
        key = request.header("Idempotency-Key") or f"no-key-{index}"
        seen[key] = Message(
            _job(content),
            "email",
            _kind(str(body.get("subject", "")), _EMAIL_KINDS),
            key,
            frozenset(u.rstrip(".,)") for u in _URL.findall(content)),
        )
    return list(seen.values())


def slack_messages(slack: FakeSlack) -> list[Message]:
    """Every Slack message posted (a webhook has no idempotency key: each post counts)."""
    found = []
    for index, payload in enumerate(slack.messages):
        header = str(payload.get("blocks", [{}])[0].get("text", {}).get("text", ""))
        text = slack.message_text(index)
        links = frozenset(u for u in _URL.findall(text.replace("|", " ")))
        found.append(
            Message(_job(text), "slack", _kind(header, _SLACK_KINDS), f"post-{index}", links)
        )
    return found


def counted(messages: list[Message], labels: dict[uuid.UUID, str]) -> Counter[tuple[str, str, str]]:
    """How many times each (step label, channel, kind) was received."""
    return Counter(
        (
            labels.get(m.job_id, f"unknown job {m.job_id}") if m.job_id else "no job link",
            m.channel,
            m.kind or "unrecognised",
        )
        for m in messages
    )
