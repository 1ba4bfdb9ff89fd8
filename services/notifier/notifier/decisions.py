"""Which notifications an outcome deserves, and what the messages about it must carry.

Pure functions of an event, what the notifier remembers of the job's earlier outcomes
(:class:`History`) and one configuration flag: no database, broker or network, so every row
below is a unit test.

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
JobFinished        ``completed`` after a setback (2)           recovered   (3)
JobFinished        ``completed``                               success     (3)
=================  ==========================================  ==========  ==========

(1) A ranking warning says the rankings may not really have been updated, so "green" would
    lie: a run that scored no DAO at all (an empty registry), a run of scope ``all`` whose
    ``daos_total`` is more than 20% below the baseline's (:attr:`History.baseline`: the last
    completed run of scope ``all``), or ``cache_invalidated`` false while cache
    revalidation is configured. It outranks the
    recovery: the warning email still says the job recovered (``Alert.recovered_from``).
(2) A setback is the job name's previous outcome (:attr:`History.previous`: the latest
    JobFinished of any scope, JobAbandoned or JobMissed before this event, of another job)
    when it was a ``failed`` run, an ``abandoned`` run or a ``missed`` slot. The recovered
    email says which.
(3) ``warning`` when the row above is a ranking warning or more than 20% of the DAOs failed
    (``daos_failed / daos_total > 0.2``; a completed run can have up to 50%); else
    ``recovered`` after a setback; else no Slack message. A completed run with many
    failures still gets the green success email: its rankings did update, and the email
    lists the failed DAOs; Slack is where the admin is asked to look.

Only a run of the whole registry is compared, and only with one: a retry or a run of chosen
DAOs (scope ``subset``) is no drop from a week of all DAOs and no measure for the next one. A
run whose producer did not say its scope (None) is neither checked nor a baseline, and a
failed run is no baseline either (a fatal error may stop a run before it lists the DAOs).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from contracts.events import (
    Channel,
    JobAbandoned,
    JobFinished,
    JobFinishedPayload,
    JobMissed,
    NotificationKind,
)
from notifier.alert import Alert, admin_job_url
from notifier.history import History, OutcomeEvent, Setback

# Both thresholds are "more than 20%", compared in integers (x * 5 > total) so that exactly
# 20% never alerts because of a float rounding.
_THRESHOLD_DENOMINATOR = 5


@dataclass(frozen=True, slots=True)
class Notification:
    """One message to send: a delivery record is keyed by ``(job_id, channel, kind)``."""

    channel: Channel
    kind: NotificationKind


def failure_rate_exceeded(payload: JobFinishedPayload) -> bool:
    """Return True when more than 20% of the DAOs failed (never for an empty run)."""
    return payload.daos_failed * _THRESHOLD_DENOMINATOR > payload.daos_total


def ranking_warnings(
    event: JobFinished, history: History, *, revalidation_configured: bool
) -> list[str]:
    """Return the sentences saying why a completed run's rankings may not have updated.

    Empty for a failed run (its failure email says more) and for a run with nothing wrong.
    A run that scored no DAO updated nothing; otherwise only a run of scope ``all`` is
    checked for a drop, against :attr:`History.baseline`.
    """
    payload = event.payload
    if payload.status != "completed":
        return []
    warnings: list[str] = []
    baseline = history.baseline
    if payload.daos_total == 0:
        warnings.append(
            "No DAO was scored (none was found to score): the rankings were not updated."
        )
    elif payload.scope == "all" and baseline is not None and _before(event, baseline.finished_at):
        drop = baseline.daos_total - payload.daos_total
        if drop * _THRESHOLD_DENOMINATOR > baseline.daos_total:
            percent = round(100 * drop / baseline.daos_total)
            warnings.append(
                f"Only {payload.daos_total} DAOs were scored, {percent}% fewer than the "
                f"{baseline.daos_total} of the last completed run of all DAOs: DAOs may be "
                "missing from the rankings."
            )
    if revalidation_configured and not payload.cache_invalidated:
        warnings.append(
            "The rankings cache was not revalidated: the site may still show the previous scores."
        )
    return warnings


def decide_notifications(
    event: OutcomeEvent, history: History, *, revalidation_configured: bool
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

    warned = bool(ranking_warnings(event, history, revalidation_configured=revalidation_configured))
    recovered = _recovered_from(event, history) is not None
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
    history: History,
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
            ranking_warnings(event, history, revalidation_configured=revalidation_configured)
        ),
        recovered_from=_recovered_from(event, history),
    )


def plan_notifications(
    event: OutcomeEvent,
    history: History,
    *,
    revalidation_configured: bool,
    admin_base_url: str,
) -> list[tuple[Notification, Alert]]:
    """Return each notification an outcome deserves with the alert to render for it."""
    flag, base = revalidation_configured, admin_base_url
    return [
        (n, build_alert(event, n.kind, history, revalidation_configured=flag, admin_base_url=base))
        for n in decide_notifications(event, history, revalidation_configured=flag)
    ]


_KINDS_BY_EVENT: dict[type[OutcomeEvent], frozenset[NotificationKind]] = {
    JobAbandoned: frozenset({"abandoned"}),
    JobMissed: frozenset({"missed"}),
    JobFinished: frozenset({"success", "failure", "recovered", "warning"}),
}


def _before(event: OutcomeEvent, moment: datetime) -> bool:
    # An outcome at or after this one is not its predecessor (an old event redelivered
    # late); comparing with it would invent a recovery or a drop.
    return moment < event.occurred_at


def _recovered_from(event: JobFinished, history: History) -> Setback | None:
    previous = history.previous
    if event.payload.status != "completed" or previous is None:
        return None
    if not _before(event, previous.occurred_at) or previous.status == "completed":
        return None
    return previous.status
