"""Which notifications an outcome deserves, and what the messages about it must carry.

Pure functions of an event, the previous run of the same job and one configuration flag: no
database, broker or network, so every row below is a unit test.

The delivery record key is ``(job_id, channel, kind)``, so a given input must always give the
same kinds, and every event gives exactly ONE email and at most ONE Slack message. Rows are
tried top to bottom; the first that matches decides the email, and the Slack column is
decided on its own:

=================  ==========================================  ==========  ==========
event              condition                                   email       slack
=================  ==========================================  ==========  ==========
JobAbandoned       always                                      abandoned   abandoned
JobMissed          always                                      missed      missed
JobFinished        status ``failed``                           failure     failure
JobFinished        ``completed`` with a ranking warning (1)    warning     warning
JobFinished        ``completed`` after a ``failed`` run (2)    recovered   (3)
JobFinished        ``completed``                               success     (3)
=================  ==========================================  ==========  ==========

(1) A ranking warning says the rankings may not really have been updated, so "green" would
    lie: ``daos_total`` more than 20% below the previous run's when that run completed, or
    ``cache_invalidated`` false while cache revalidation is configured. It outranks the
    recovery: the warning email still says the job recovered (``Alert.recovered``).
(2) Only the previous run's status counts; the previous run is the last JobFinished of the
    same ``job_name`` before this one (see :class:`PreviousRun`).
(3) ``warning`` when the row above is a ranking warning or more than 20% of the DAOs failed
    (``daos_failed / daos_total > 0.2``; a completed run can have up to 50%); else
    ``recovered`` after a failed run; else no Slack message. A completed run with many
    failures still gets the green success email: its rankings did update, and the email
    lists the failed DAOs; Slack is where the admin is asked to look.

A failed previous run's ``daos_total`` is no baseline (a fatal error may stop a run before it
lists the DAOs), so the drop check only compares with a completed previous run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from contracts.events import (
    Channel,
    Failure,
    JobAbandoned,
    JobFinished,
    JobFinishedPayload,
    JobMissed,
    JobStatus,
    NotificationKind,
)

AlertStatus = Literal["completed", "failed", "abandoned", "missed"]
OutcomeEvent = JobFinished | JobAbandoned | JobMissed

# Both thresholds are "more than 20%", compared in integers (x * 5 > total) so that exactly
# 20% never alerts because of a float rounding.
_THRESHOLD_DENOMINATOR = 5

# Words of a job name shown in capitals or with their own casing ("weekly-gvs-recalculation"
# reads "Weekly GVS Recalculation", as in the story's email).
_WORD_CASING = {"gvs": "GVS", "dao": "DAO", "daos": "DAOs", "api": "API", "isr": "ISR"}


@dataclass(frozen=True, slots=True)
class PreviousRun:
    """What the notifier remembers of the last JobFinished of the same ``job_name``.

    The caller must look it up as "the last one that occurred before this event, other than
    this job", so that a redelivered event gets the same previous run and so the same kinds.
    ``finished_at`` is that JobFinished's ``occurred_at``.
    """

    status: JobStatus
    daos_total: int
    finished_at: datetime


@dataclass(frozen=True, slots=True)
class Notification:
    """One message to send: a delivery record is keyed by ``(job_id, channel, kind)``."""

    channel: Channel
    kind: NotificationKind


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
    recovered: bool = False
    last_event_at: datetime | None = None
    stale_after_s: int | None = None
    scheduled_for: datetime | None = None
    grace_s: int | None = None

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


def failure_rate_exceeded(payload: JobFinishedPayload) -> bool:
    """Return True when more than 20% of the DAOs failed (never for an empty run)."""
    return payload.daos_failed * _THRESHOLD_DENOMINATOR > payload.daos_total


def ranking_warnings(
    event: JobFinished, previous: PreviousRun | None, *, revalidation_configured: bool
) -> list[str]:
    """Return the sentences saying why a completed run's rankings may not have updated.

    Empty for a failed run (its failure email says more) and for a run with nothing wrong.
    """
    payload = event.payload
    if payload.status != "completed":
        return []
    warnings: list[str] = []
    baseline = _previous_before(event, previous)
    if baseline is not None and baseline.status == "completed":
        drop = baseline.daos_total - payload.daos_total
        if drop * _THRESHOLD_DENOMINATOR > baseline.daos_total:
            percent = round(100 * drop / baseline.daos_total)
            warnings.append(
                f"Only {payload.daos_total} DAOs were scored, {percent}% fewer than the "
                f"{baseline.daos_total} of the previous completed run: DAOs may be missing "
                "from the rankings."
            )
    if revalidation_configured and not payload.cache_invalidated:
        warnings.append(
            "The rankings cache was not revalidated: the site may still show the previous scores."
        )
    return warnings


def decide_notifications(
    event: OutcomeEvent, previous: PreviousRun | None, *, revalidation_configured: bool
) -> list[Notification]:
    """Return the notifications an outcome deserves: the email first, then Slack if any.

    Always exactly one email and at most one Slack message; the same input always gives the
    same list (the module docstring has the table).
    """
    if isinstance(event, JobAbandoned):
        return [Notification("email", "abandoned"), Notification("slack", "abandoned")]
    if isinstance(event, JobMissed):
        return [Notification("email", "missed"), Notification("slack", "missed")]
    if event.payload.status == "failed":
        return [Notification("email", "failure"), Notification("slack", "failure")]

    warned = bool(
        ranking_warnings(event, previous, revalidation_configured=revalidation_configured)
    )
    recovered = _recovered(event, previous)
    email_kind: NotificationKind = "warning" if warned else "recovered" if recovered else "success"
    notifications = [Notification("email", email_kind)]
    if warned or failure_rate_exceeded(event.payload):
        notifications.append(Notification("slack", "warning"))
    elif recovered:
        notifications.append(Notification("slack", "recovered"))
    return notifications


def build_alert(
    event: OutcomeEvent,
    kind: NotificationKind,
    previous: PreviousRun | None,
    *,
    revalidation_configured: bool,
    admin_base_url: str,
) -> Alert:
    """Return what the renderers need to write the ``kind`` message about ``event``.

    Raises ValueError when ``kind`` is not one :func:`decide_notifications` can give for this
    event type (a "missed" message about a finished job is a caller's bug).
    """
    if kind not in _KINDS_BY_EVENT[type(event)]:
        raise ValueError(f"kind {kind!r} does not apply to {event.event_type}")
    common = {
        "kind": kind,
        "job_id": event.job_id,
        "job_name": event.job_name,
        "occurred_at": event.occurred_at,
        "admin_url": admin_job_url(admin_base_url, event.job_id),
    }
    if isinstance(event, JobAbandoned):
        return Alert(
            **common,
            status="abandoned",
            last_event_at=event.payload.last_event_at,
            stale_after_s=event.payload.stale_after_s,
        )
    if isinstance(event, JobMissed):
        return Alert(
            **common,
            status="missed",
            scheduled_for=event.payload.scheduled_for,
            grace_s=event.payload.grace_s,
        )
    payload = event.payload
    return Alert(
        **common,
        status=payload.status,
        daos_total=payload.daos_total,
        daos_processed=payload.daos_processed,
        daos_failed=payload.daos_failed,
        duration_ms=payload.duration_ms,
        cache_invalidated=payload.cache_invalidated,
        failures=tuple(payload.failures),
        fatal_error=payload.fatal_error,
        warnings=tuple(
            ranking_warnings(event, previous, revalidation_configured=revalidation_configured)
        ),
        recovered=_recovered(event, previous),
    )


def plan_notifications(
    event: OutcomeEvent,
    previous: PreviousRun | None,
    *,
    revalidation_configured: bool,
    admin_base_url: str,
) -> list[tuple[Notification, Alert]]:
    """Return each notification an outcome deserves with the alert to render for it."""
    flag, base = revalidation_configured, admin_base_url
    return [
        (n, build_alert(event, n.kind, previous, revalidation_configured=flag, admin_base_url=base))
        for n in decide_notifications(event, previous, revalidation_configured=flag)
    ]


_KINDS_BY_EVENT: dict[type[OutcomeEvent], frozenset[NotificationKind]] = {
    JobAbandoned: frozenset({"abandoned"}),
    JobMissed: frozenset({"missed"}),
    JobFinished: frozenset({"success", "failure", "recovered", "warning"}),
}


def _previous_before(event: JobFinished, previous: PreviousRun | None) -> PreviousRun | None:
    # A run that finished at or after this one is not its predecessor (an old event
    # redelivered late); comparing with it would invent a recovery or a drop.
    if previous is None or previous.finished_at >= event.occurred_at:
        return None
    return previous


def _recovered(event: JobFinished, previous: PreviousRun | None) -> bool:
    baseline = _previous_before(event, previous)
    return (
        event.payload.status == "completed" and baseline is not None and baseline.status == "failed"
    )
