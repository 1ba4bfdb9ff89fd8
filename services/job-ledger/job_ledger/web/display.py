"""How values read on the admin pages: durations, moments, rates; pure and escaped by Jinja."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any


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


def moment(value: datetime | None) -> str:
    """Return ``2025-12-22 00:05:32 UTC``; an em dash for None."""
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


DISPLAY_FILTERS: dict[str, Callable[..., Any]] = {
    "duration": human_duration,
    "seconds": human_seconds,
    "moment": moment,
    "percent": percent,
}
