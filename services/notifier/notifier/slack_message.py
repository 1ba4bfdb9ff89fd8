"""The Slack message for an alert, as a Block Kit payload for an incoming webhook.

Slack's limits (https://api.slack.com/reference/block-kit/blocks): 50 blocks a message, 3,000
characters of section text, 150 of header text. A failed run can list hundreds of DAOs with
errors of up to 2,000 characters, so the list is cut to what reads well and fits, and says
how many were left out; the admin page has them all.

Slack's mrkdwn treats only ``&``, ``<`` and ``>`` as control characters
(https://api.slack.com/reference/surfaces/formatting#escaping): every name, error and URL goes
through :func:`escape_slack_text`, so a DAO name cannot ping a channel or forge a link. The
header is plain text made of the job name alone, which the contract limits to
``[a-z0-9_-]``.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from chassis.local_time import UTC_ZONE, local_moment
from contracts.events import NotificationKind
from notifier.alert import Alert
from notifier.rendering import human_duration

MAX_BLOCKS = 50
MAX_SECTION_CHARS = 3000
MAX_HEADER_CHARS = 150
# More than a screenful of failures is not read in Slack; the admin page lists them all.
MAX_FAILURES_SHOWN = 20
MAX_NAME_CHARS = 100
MAX_ERROR_CHARS = 300

_HEADERS: dict[NotificationKind, str] = {
    "success": "✅ {title} completed",
    "recovered": "✅ {title} recovered",
    "warning": "⚠️ {title} completed with warnings",
    "failure": "🚨 {title} failed",
    "abandoned": "🚨 {title} abandoned",
    "missed": "🚨 {title} missed its run",
}

Block = dict[str, Any]


def escape_slack_text(text: str) -> str:
    """Return ``text`` with ``&``, ``<`` and ``>`` escaped as Slack requires (``&`` first)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def build_slack_payload(alert: Alert, zone: ZoneInfo = UTC_ZONE) -> dict[str, Any]:
    """Return the webhook body for ``alert``: Block Kit ``blocks`` and a ``text`` fallback.

    Within Slack's limits whatever the alert holds: at most 50 blocks, a header of at most
    150 characters, sections of at most 3,000. A recovery gets a short note; other kinds get
    the counts, any ranking warnings, the fatal error and the failed DAOs with their errors.
    Moments are written in ``zone`` with its abbreviation (``ADMIN_TIMEZONE``).
    """
    title = _HEADERS[alert.kind].format(title=alert.job_title)
    blocks: list[Block] = [_header(title), _section(_summary(alert, zone))]
    if alert.kind != "recovered":
        if alert.warnings:
            lines = [f"• {escape_slack_text(w)}" for w in alert.warnings]
            blocks.append(_section("*Check the rankings:*\n" + "\n".join(lines)))
        if alert.fatal_error:
            fatal = escape_slack_text(_clip(alert.fatal_error, MAX_ERROR_CHARS * 2))
            blocks.append(_section(f"*Fatal error:* {fatal}"))
        # Two blocks kept back: the "…and N more" note and the link.
        blocks.extend(_failure_sections(alert, MAX_BLOCKS - len(blocks) - 2))
    url = escape_slack_text(alert.admin_url)
    blocks.append(_section(f"<{url}|View in Admin Dashboard>"))
    return {"text": escape_slack_text(f"{title}: {_headline(alert)}"), "blocks": blocks}


def _summary(alert: Alert, zone: ZoneInfo) -> str:
    stamp = local_moment(alert.occurred_at, zone)
    if alert.status == "abandoned" and alert.last_event_at is not None:
        quiet = human_duration((alert.stale_after_s or 0) * 1000)
        return (
            f"The run stopped reporting progress and was marked failed.\n"
            f"*Last event:* {local_moment(alert.last_event_at, zone)}\n"
            f"*No event for:* {quiet}\n*Detected:* {stamp}"
        )
    if alert.status == "missed" and alert.scheduled_for is not None:
        grace = human_duration((alert.grace_s or 0) * 1000)
        return (
            f"The scheduled run never started; the rankings were not updated.\n"
            f"*Scheduled for:* {local_moment(alert.scheduled_for, zone)}\n"
            f"*Not started after:* {grace}\n*Detected:* {stamp}"
        )
    lines = [f"*Status:* {alert.status.capitalize()}", f"*Timestamp:* {stamp}"]
    if alert.duration_ms is not None:
        lines.append(f"*Duration:* {human_duration(alert.duration_ms)}")
    lines.append(f"*DAOs processed:* {alert.daos_processed}/{alert.daos_total}")
    lines.append(f"*Failures:* {alert.daos_failed} ({alert.failure_percent}%)")
    # The rule of decisions.failure_rate_exceeded, in integers: a rounded percentage would
    # hide 20.4%.
    failed, total = alert.daos_failed or 0, alert.daos_total or 0
    if alert.status == "completed" and failed * 5 > total:
        lines.append("More than 20% of the DAOs failed: their scores were not updated.")
    if alert.recovered:
        lines.insert(0, f"{alert.setback[0].upper()}{alert.setback[1:]}; this one completed.")
    return "\n".join(lines)


def _headline(alert: Alert) -> str:
    if alert.status == "abandoned":
        return "no progress, marked failed"
    if alert.status == "missed":
        return "the scheduled run never started"
    return f"{alert.daos_processed}/{alert.daos_total} DAOs processed, {alert.daos_failed} failed"


def _failure_sections(alert: Alert, max_sections: int) -> list[Block]:
    """Pack the failed DAOs into at most ``max_sections`` sections, then say what was cut."""
    lines = [
        f"• *{escape_slack_text(_clip(f.dao_name, MAX_NAME_CHARS))}*: "
        f"{escape_slack_text(_clip(f.error, MAX_ERROR_CHARS))}"
        for f in alert.failures[:MAX_FAILURES_SHOWN]
    ]
    texts: list[str] = []
    current = "*Failed DAOs:*"
    shown = 0
    for line in lines:
        if len(current) + 1 + len(line) > MAX_SECTION_CHARS:
            if len(texts) + 1 >= max_sections:
                break
            texts.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line
        shown += 1
    if shown:
        texts.append(current)
    blocks = [_section(text) for text in texts]
    not_shown = max(alert.daos_failed or 0, len(alert.failures)) - shown
    if not_shown > 0:
        more = f"…and {not_shown} more not shown" if shown else f"{not_shown} failed DAOs not shown"
        blocks.append(_section(f"{more}; the admin page lists them."))
    return blocks


def _clip(text: str, limit: int) -> str:
    # One line per DAO: an error's own newlines would break the list apart.
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _header(text: str) -> Block:
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": _clip(text, MAX_HEADER_CHARS), "emoji": True},
    }


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}
