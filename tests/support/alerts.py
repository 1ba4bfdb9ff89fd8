"""Alerts as the notifier's decisions hand them over, for the email and Slack rendering tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from contracts.events import Failure, NotificationKind
from notifier.alert import Alert

JOB_ID = UUID("6f1c2a52-7d0e-4a8e-9a51-3c1f0f1b2c3d")
ADMIN_URL = f"https://chainsights.one/admin/jobs/{JOB_ID}"
FINISHED_AT = datetime(2025, 12, 22, 0, 5, 32, tzinfo=UTC)
EVIL_NAME = "<img src=x onerror=alert(1)>"

_STATUS_OF_KIND = {"failure": "failed", "abandoned": "abandoned", "missed": "missed"}


def weekly_run_alert(kind: NotificationKind, **changes: Any) -> Alert:
    """The ``kind`` alert about the weekly run that finished at :data:`FINISHED_AT` after
    5m 32s with all 10 DAOs scored, linked to :data:`ADMIN_URL`.

    A failure's run failed; an abandoned run's last event came an hour earlier (stale after an
    hour); a missed run was due at :data:`FINISHED_AT` (30m of grace). ``changes`` (Alert
    fields) win.
    """
    fields: dict[str, Any] = {
        "kind": kind,
        "job_id": JOB_ID,
        "job_name": "weekly-gvs-recalculation",
        "status": _STATUS_OF_KIND.get(kind, "completed"),
        "occurred_at": FINISHED_AT,
        "admin_url": ADMIN_URL,
        "daos_total": 10,
        "daos_processed": 10,
        "daos_failed": 0,
        "duration_ms": 332_000,
        "cache_invalidated": True,
    }
    if kind == "abandoned":
        fields |= {"last_event_at": FINISHED_AT - timedelta(hours=1), "stale_after_s": 3600}
    if kind == "missed":
        fields |= {"scheduled_for": FINISHED_AT, "grace_s": 1800}
    return Alert(**(fields | changes))


def six_of_ten_failed(evil_error: str) -> dict[str, Any]:
    """Alert fields of a run in which 6 of its 10 DAOs failed; two are listed, the second
    named :data:`EVIL_NAME` and failing with ``evil_error`` (HTML, say)."""
    return {
        "daos_processed": 4,
        "daos_failed": 6,
        "failures": (
            Failure(dao_id="uni", dao_name="Uniswap", error="Snapshot hub timed out"),
            Failure(dao_id="evil", dao_name=EVIL_NAME, error=evil_error),
        ),
    }
