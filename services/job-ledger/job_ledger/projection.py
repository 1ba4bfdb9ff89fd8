"""The fold of a job's events into its ``job_logs`` row, through a :class:`JobDelta`.

A :class:`JobDelta` is what some of one job's events say (one method per event type);
:meth:`JobDelta.row` is the row they make, :meth:`JobDelta.merged` the delta of two sets of
events together. The merge is the specification of the SQL merge in :mod:`job_ledger.job_logs`,
which turns a stored row and a batch's delta into ``stored.merged(batch).row()``.

Order-independent by construction: counts are sums, times are minima or maxima, the values
JobStarted and JobFinished carry are taken from those events whenever they arrive, and the
derived columns (status, completed_at, daos_total…) are computed from what has been seen, not
from what came last. Folding the same events in any order, or in any split merged in any
order, gives the same :class:`JobRow`.

Decisions the contract leaves to the ledger:

- ``daos_processed`` / ``daos_failed`` count the DaoProcessed / DaoFailed events present, not
  JobFinished's totals: that is order-independent, and once the job is complete
  (``events_received == expected_events``) the two agree. ``daos_total`` is JobFinished's once it
  has arrived, else JobStarted's, else 0.
- ``errors`` lists the DaoFailed events in sequence order (null when there are none).
- ``started_at`` is JobStarted's ``occurred_at``; before JobStarted arrived, the earliest
  ``occurred_at`` seen (``has_started`` false).
- ``events_received``, ``last_event_at`` and ``last_sequence`` count only the job's own
  sequenced events (JobStarted … JobFinished), so completeness is
  ``events_received == expected_events == JobFinished.sequence + 1``.
- ``completed_at`` is JobFinished's ``occurred_at``, else the earliest JobAbandoned's or
  JobMissed's.
- A JobMissed makes the row of a slot no run started for (its job id is the ledger's, never a
  run's): status ``failed``, ``started_at`` = ``scheduled_for`` (the time a JobMissed counts
  as, for the earliest-event rule), trigger ``cron``, no DAOs, ``fatal_error`` a sentence
  saying what was missed. Its ``outcome`` (a column the database derives) is ``missed``.
- The Notification events make no ``job_logs`` row (they describe alerts, kept in
  ``job_notifications``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

from contracts.events import (
    DaoFailed,
    DaoProcessed,
    Envelope,
    JobAbandoned,
    JobFinished,
    JobMissed,
    JobStarted,
)
from job_ledger.job_row import JobRow

JOB_LOG_EVENT_TYPES = frozenset(
    {"JobStarted", "DaoProcessed", "DaoFailed", "JobFinished", "JobAbandoned", "JobMissed"}
)
"""The event types that make or change a ``job_logs`` row."""


@dataclass
class JobDelta:
    """What some of one job's events say about its row: fold events in with :meth:`apply`.

    Assumes each event is applied once (the event store deduplicates before folding), and so
    at most one JobStarted and one JobFinished per job (each has a fixed sequence).
    """

    job_id: UUID
    job_name: str = ""
    earliest_at: datetime | None = None
    started: JobStarted | None = None
    finished: JobFinished | None = None
    abandoned_at: datetime | None = None
    missed: JobMissed | None = None
    daos_processed: int = 0
    daos_failed: int = 0
    failures: dict[int, dict[str, str]] = field(default_factory=dict)
    """The DaoFailed events' errors (in the API's shape) by sequence."""
    events_received: int = 0
    last_event_at: datetime | None = None
    last_sequence: int | None = None

    def apply(self, event: Envelope) -> None:
        """Fold ``event``; events of other types than :data:`JOB_LOG_EVENT_TYPES` are ignored."""
        if type(event).__name__ not in JOB_LOG_EVENT_TYPES:
            return
        if event.job_id != self.job_id:
            raise ValueError(f"event {event.event_id} belongs to job {event.job_id}")
        self.job_name = self.job_name or event.job_name
        # A missed slot dates from the slot, not from when the watchdog noticed it.
        at = event.payload.scheduled_for if isinstance(event, JobMissed) else event.occurred_at
        self.earliest_at = _earliest(self.earliest_at, at)
        if event.sequence is not None:
            self.events_received += 1
            self.last_event_at = _latest(self.last_event_at, event.occurred_at)
            self.last_sequence = max(self.last_sequence or 0, event.sequence)
        if isinstance(event, JobStarted):
            self.on_job_started(event)
        elif isinstance(event, DaoProcessed):
            self.on_dao_processed(event)
        elif isinstance(event, DaoFailed):
            self.on_dao_failed(event)
        elif isinstance(event, JobFinished):
            self.on_job_finished(event)
        elif isinstance(event, JobAbandoned):
            self.on_job_abandoned(event)
        elif isinstance(event, JobMissed):
            self.on_job_missed(event)

    def merged(self, other: JobDelta) -> JobDelta:
        """The delta of this one's events and ``other``'s together (no event in both).

        Commutative and associative, so any split of a job's events, merged in any order,
        gives the delta of folding them all. Raises ``ValueError`` for another job's delta.
        """
        if other.job_id != self.job_id:
            raise ValueError(f"a delta of job {other.job_id} merged into job {self.job_id}")
        last_sequences = [s for s in (self.last_sequence, other.last_sequence) if s is not None]
        return JobDelta(
            job_id=self.job_id,
            job_name=self.job_name or other.job_name,
            earliest_at=_earliest(self.earliest_at, other.earliest_at),
            started=self.started if self.started is not None else other.started,
            finished=self.finished if self.finished is not None else other.finished,
            abandoned_at=_earliest(self.abandoned_at, other.abandoned_at),
            missed=_earlier_slot(self.missed, other.missed),
            daos_processed=self.daos_processed + other.daos_processed,
            daos_failed=self.daos_failed + other.daos_failed,
            failures=self.failures | other.failures,
            events_received=self.events_received + other.events_received,
            last_event_at=_latest(self.last_event_at, other.last_event_at),
            last_sequence=max(last_sequences, default=None),
        )

    def on_job_started(self, event: JobStarted) -> None:
        self.started = event

    def on_dao_processed(self, event: DaoProcessed) -> None:
        self.daos_processed += 1

    def on_dao_failed(self, event: DaoFailed) -> None:
        self.daos_failed += 1
        self.failures[event.sequence] = {
            "daoId": event.payload.dao_id,
            "daoName": event.payload.dao_name,
            "error": event.payload.error,
        }

    def on_job_finished(self, event: JobFinished) -> None:
        self.finished = event

    def on_job_abandoned(self, event: JobAbandoned) -> None:
        self.abandoned_at = _earliest(self.abandoned_at, event.occurred_at)

    def on_job_missed(self, event: JobMissed) -> None:
        self.missed = _earlier_slot(self.missed, event)

    def row(self) -> JobRow:
        """The row for what has been folded; raises ``ValueError`` if nothing was."""
        if self.earliest_at is None:
            raise ValueError(f"no job_logs event folded for job {self.job_id}")
        started, finished, missed = self.started, self.finished, self.missed
        if finished is not None:
            status: str = finished.payload.status
            completed_at: datetime | None = finished.occurred_at
        else:
            ended = [t for t in (self.abandoned_at, missed and missed.occurred_at) if t]
            status = "failed" if ended else "running"
            completed_at = min(ended, default=None)
        if finished is not None:
            daos_total = finished.payload.daos_total
        elif started is not None:
            daos_total = started.payload.daos_total
        else:
            daos_total = 0
        return JobRow(
            id=self.job_id,
            job_name=self.job_name,
            started_at=started.occurred_at if started is not None else self.earliest_at,
            completed_at=completed_at,
            status=status,
            daos_processed=self.daos_processed,
            daos_total=daos_total,
            errors=[self.failures[s] for s in sorted(self.failures)] or None,
            duration_ms=finished.payload.duration_ms if finished else None,
            cache_invalidated=finished.payload.cache_invalidated if finished else False,
            trigger=started.payload.trigger if started else ("cron" if missed else None),
            daos_failed=self.daos_failed,
            fatal_error=_fatal_error(finished, missed),
            last_event_at=self.last_event_at,
            last_sequence=self.last_sequence,
            events_received=self.events_received,
            expected_events=finished.sequence + 1 if finished else None,
            has_started=started is not None,
            abandoned_at=self.abandoned_at,
            scheduled_for=missed.payload.scheduled_for if missed else None,
        )


def job_deltas(events: Iterable[Envelope]) -> dict[UUID, JobDelta]:
    """The delta of every job the ``events`` touch (each event folded once, in any order)."""
    deltas: dict[UUID, JobDelta] = {}
    for event in events:
        if type(event).__name__ in JOB_LOG_EVENT_TYPES:
            deltas.setdefault(event.job_id, JobDelta(event.job_id)).apply(event)
    return deltas


def fold_jobs(events: Iterable[Envelope]) -> dict[UUID, JobRow]:
    """The row of every job the ``events`` touch (each event folded once, in any order)."""
    return {job_id: delta.row() for job_id, delta in job_deltas(events).items()}


def missed_slot_sentence(event: JobMissed) -> str:
    """What a missed slot's ``fatal_error`` says: which slot, and the grace it was given."""
    slot = event.payload.scheduled_for.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    grace = _grace_text(event.payload.grace_s)
    return f"No run started within {grace} of the slot scheduled for {slot}."


def _grace_text(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return "".join(parts) or "0s"


def _fatal_error(finished: JobFinished | None, missed: JobMissed | None) -> str | None:
    if finished is not None:
        return finished.payload.fatal_error
    return missed_slot_sentence(missed) if missed is not None else None


def _earliest(current: datetime | None, candidate: datetime | None) -> datetime | None:
    if current is None:
        return candidate
    return current if candidate is None or current <= candidate else candidate


def _latest(current: datetime | None, candidate: datetime | None) -> datetime | None:
    if current is None:
        return candidate
    return current if candidate is None or current >= candidate else candidate


def _earlier_slot(current: JobMissed | None, candidate: JobMissed | None) -> JobMissed | None:
    # One JobMissed per slot's job id (its ids are derived from the slot); the earliest slot
    # keeps the result independent of order all the same.
    if current is None:
        return candidate
    if candidate is None or current.payload.scheduled_for <= candidate.payload.scheduled_for:
        return current
    return candidate
