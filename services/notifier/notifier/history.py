"""What the notifier remembers of a job's outcomes, and what a decision looks back on.

Pure: :func:`remembered` says what to keep of an outcome event (the intake writes it into the
``outcomes`` table), and :class:`History` is what the intake reads back for the decisions in
:mod:`notifier.decisions`: the job name's previous outcome (for a recovery) and its last
completed run of all DAOs (the baseline of the drop check).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from contracts.events import JobAbandoned, JobFinished, JobMissed, Scope

AlertStatus = Literal["completed", "failed", "abandoned", "missed"]
Setback = Literal["failed", "abandoned", "missed"]
"""The previous outcomes a completed run recovers from."""
OutcomeEvent = JobFinished | JobAbandoned | JobMissed


@dataclass(frozen=True, slots=True)
class Remembered:
    """What the notifier keeps of an outcome, for the decisions about the job's later ones.

    ``occurred_at`` is the event's; ``scope`` and ``daos_total`` are a finished run's (None
    for an abandoned run or a missed slot, and ``scope`` None when the producer did not say).
    """

    status: AlertStatus
    scope: Scope | None
    daos_total: int | None
    occurred_at: datetime

    @property
    def is_baseline(self) -> bool:
        """True for a completed run of the whole registry, the only measure of a drop."""
        return self.status == "completed" and self.scope == "all"


def remembered(event: OutcomeEvent) -> Remembered:
    """Return what to keep of ``event`` for later decisions (see :class:`History`)."""
    if isinstance(event, JobAbandoned):
        return Remembered("abandoned", None, None, event.occurred_at)
    if isinstance(event, JobMissed):
        return Remembered("missed", None, None, event.occurred_at)
    payload = event.payload
    return Remembered(payload.status, payload.scope, payload.daos_total, event.occurred_at)


@dataclass(frozen=True, slots=True)
class PreviousOutcome:
    """The job name's latest outcome before this event, of another job: a finished run of any
    scope, an abandoned run or a missed slot. ``occurred_at`` is that event's."""

    status: AlertStatus
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class Baseline:
    """The job name's last completed run of scope ``all`` before this event, of another job.

    ``finished_at`` is that JobFinished's ``occurred_at``.
    """

    daos_total: int
    finished_at: datetime


@dataclass(frozen=True, slots=True)
class History:
    """What the decisions about an outcome look back on; the caller looks both up as "before
    this event, other than this job" (:class:`Remembered` rows), so that a redelivered event
    gets the same history and so the same kinds. Empty for a job name's first outcome."""

    previous: PreviousOutcome | None = None
    baseline: Baseline | None = None
