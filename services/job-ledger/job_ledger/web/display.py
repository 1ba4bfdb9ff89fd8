"""How values read on the admin pages: durations, moments, rates; pure and escaped by Jinja.

Moments are shown in the page's zone (``ADMIN_TIMEZONE``, the template context's ``zone``)
with the zone's abbreviation; the API keeps UTC.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import pass_context
from jinja2.runtime import Context

from chassis.local_time import UTC_ZONE, local_moment


def human_duration(ms: int | None) -> str:
    """Return ``850ms``, ``42s``, ``5m 32s``, ``1h 5m``; an em dash for None."""
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{max(ms, 0)}ms"
    minutes, seconds = divmod(ms // 1000, 60)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (seconds, "s")) if n]
    return " ".join(parts)


def human_seconds(seconds: int | float | None) -> str:
    return "—" if seconds is None else human_duration(int(seconds * 1000))


def moment(value: datetime | None, zone: ZoneInfo = UTC_ZONE) -> str:
    """Return ``2025-12-22 01:05:32 CET`` (``value`` in ``zone``); an em dash for None."""
    if value is None:
        return "—"
    return local_moment(value, zone)


@pass_context
def _page_moment(context: Context, value: datetime | None) -> str:
    return moment(value, context["zone"])


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


DISPLAY_FILTERS: dict[str, Callable[..., Any]] = {
    "duration": human_duration,
    "seconds": human_seconds,
    "moment": _page_moment,
    "percent": percent,
}


def event_summary(event_type: str, payload: dict[str, Any]) -> str:
    """Return one line saying what an event reports, for the timeline (escaped by Jinja).

    Reads the payload defensively: a field missing from a stored payload shows as ``?``
    rather than breaking the page.
    """

    def get(key: str) -> Any:
        value = payload.get(key)
        return "?" if value is None else value

    if event_type == "JobStarted":
        return f"started: {get('daos_total')} DAOs, trigger {get('trigger')}"
    if event_type == "DaoProcessed":
        return (
            f"{get('dao_name')} ({get('dao_id')}): score {get('score')} in {get('duration_ms')}ms"
        )
    if event_type == "DaoFailed":
        return (
            f"{get('dao_name')} ({get('dao_id')}) failed after {get('attempts')} attempts:"
            f" {get('error')}"
        )
    if event_type == "JobFinished":
        text = (
            f"{get('status')}: {get('daos_processed')} of {get('daos_total')} processed,"
            f" {get('daos_failed')} failed, cache invalidated: {get('cache_invalidated')}"
        )
        fatal = payload.get("fatal_error")
        return f"{text}; fatal error: {fatal}" if fatal else text
    if event_type == "JobAbandoned":
        return (
            f"abandoned: no event since {get('last_event_at')}"
            f" (stale after {get('stale_after_s')}s)"
        )
    if event_type == "JobMissed":
        return f"missed the slot {get('scheduled_for')} (grace {get('grace_s')}s)"
    if event_type == "NotificationSent":
        return f"{get('channel')} {get('kind')} alert sent after {get('attempts')} attempts"
    if event_type == "NotificationFailed":
        return (
            f"{get('channel')} {get('kind')} alert failed after {get('attempts')} attempts:"
            f" {get('error')}"
        )
    if event_type == "NotificationSkipped":
        return f"{get('channel')} {get('kind')} alert skipped: {get('reason')}"
    if event_type == "RunAccepted":
        return f"run request {get('request_id')} accepted ({get('trigger')}, {get('scope')})"
    if event_type == "RunRefused":
        return f"run request {get('request_id')} refused: {get('reason')}"
    return ", ".join(f"{k}={v}" for k, v in payload.items())
