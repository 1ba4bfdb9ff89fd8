"""What one message about an outcome carries: :class:`Alert`, rendered by the email templates
and the Slack builder, and kept as JSON in a delivery record so that it renders again after a
restart."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, model_validator

from contracts.events import Failure, NotificationKind
from notifier.history import AlertStatus, Setback

# Words of a job name shown in capitals or with their own casing ("weekly-gvs-recalculation"
# reads "Weekly GVS Recalculation", as in the story's email).
_WORD_CASING = {"gvs": "GVS", "dao": "DAO", "daos": "DAOs", "api": "API", "isr": "ISR"}

_SETBACK_SENTENCES: dict[Setback, str] = {
    "failed": "the previous run failed",
    "abandoned": "the previous run was abandoned (it stopped reporting progress)",
    "missed": "the last scheduled run was missed (it never started)",
}


class Alert(BaseModel):
    """Everything the email templates and the Slack builder need about one outcome.

    A pydantic model so that a delivery record can keep it as JSON and render again after a
    restart. JobAbandoned and JobMissed carry no counts (None); ``last_event_at`` and
    ``stale_after_s``, or ``scheduled_for`` and ``grace_s``, say what was expected instead.
    """

    model_config = ConfigDict(frozen=True)

    kind: NotificationKind
    job_id: UUID
    job_name: str
    status: AlertStatus
    occurred_at: datetime
    admin_url: str
    daos_total: int | None = None
    daos_processed: int | None = None
    daos_failed: int | None = None
    duration_ms: int | None = None
    cache_invalidated: bool | None = None
    failures: tuple[Failure, ...] = ()
    fatal_error: str | None = None
    warnings: tuple[str, ...] = ()
    recovered_from: Setback | None = None
    last_event_at: datetime | None = None
    stale_after_s: int | None = None
    scheduled_for: datetime | None = None
    grace_s: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _read_recovered_flag(cls, data: Any) -> Any:
        # Alerts stored before ``recovered_from`` existed say ``recovered: true``, and only a
        # failed run was a setback then; a pending record must still render as it was decided.
        if isinstance(data, dict) and data.get("recovered") and "recovered_from" not in data:
            return {**data, "recovered_from": "failed"}
        return data

    @property
    def recovered(self) -> bool:
        """True when this completed run followed a failed, abandoned or missed one."""
        return self.recovered_from is not None

    @property
    def setback(self) -> str:
        """What this run recovered from, as the end of a sentence; empty when it recovered
        from nothing: ``the previous run failed``, ``... was abandoned ...``, ``... missed``."""
        return _SETBACK_SENTENCES[self.recovered_from] if self.recovered_from else ""

    @property
    def job_title(self) -> str:
        """The job name for people: ``weekly-gvs-recalculation`` → ``Weekly GVS Recalculation``."""
        words = self.job_name.replace("_", "-").split("-")
        return " ".join(_WORD_CASING.get(w, w.capitalize()) for w in words if w)

    @property
    def failures_not_listed(self) -> int:
        """How many failed DAOs the event counted but did not list (it carries the first 100)."""
        return max(0, (self.daos_failed or 0) - len(self.failures))

    @property
    def failure_percent(self) -> int | None:
        """The share of DAOs that failed, rounded to a whole percent; None without counts."""
        if self.daos_total is None or self.daos_failed is None:
            return None
        if self.daos_total == 0:
            return 0
        return round(100 * self.daos_failed / self.daos_total)


def admin_job_url(admin_base_url: str, job_id: UUID) -> str:
    """Return the job's page in the admin dashboard: ``{base}/admin/jobs/{job_id}``."""
    return f"{admin_base_url.rstrip('/')}/admin/jobs/{job_id}"
