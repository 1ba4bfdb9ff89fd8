"""Generated job histories for the ledger's fold: a hypothesis strategy and the events it yields.

``job_histories`` feeds both the fold's unit property test and the integration property test
that delivers the same histories to Postgres.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from contracts.events import (
    DaoFailed,
    DaoFailedPayload,
    DaoProcessed,
    DaoProcessedPayload,
    Event,
    Failure,
    JobAbandoned,
    JobAbandonedPayload,
    JobFinished,
    JobFinishedPayload,
    JobMissed,
    JobMissedPayload,
    JobStarted,
    JobStartedPayload,
    NotificationFailed,
    NotificationFailedPayload,
    NotificationSent,
    NotificationSentPayload,
    NotificationSkipped,
    NotificationSkippedPayload,
)

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
JOB_NAME = "weekly-gvs-recalculation"


@dataclass(frozen=True)
class History:
    """A generated job: which DAOs fail, whether it finished or was abandoned, what arrived.

    A ``missed`` history is a schedule slot no run started for: its JobMissed (instead of any
    run event) and the alerts about it.
    """

    outcomes: tuple[bool, ...]  # True: the DAO failed
    finished: bool
    fatal: bool
    abandoned: bool
    arrived: tuple[bool, ...]  # per event of the full history, whether it was delivered at all
    notifications: tuple[tuple[str, str, str, int], ...]  # channel, kind, state, minute
    missed: bool = False

    def events(self, job_id: uuid.UUID) -> list[Event]:
        """The delivered events for ``job_id``, in sequence order (ids derived from job_id)."""
        everything = build_events(job_id, self)
        return [e for e, keep in zip(everything, self.arrived, strict=True) if keep]


def _id(job_id: uuid.UUID, name: str) -> uuid.UUID:
    return uuid.uuid5(job_id, name)


def build_events(job_id: uuid.UUID, h: History) -> list[Event]:
    events = _missed_slot(job_id) if h.missed else _run_events(job_id, h)
    return events + _notifications(job_id, h)


def _missed_slot(job_id: uuid.UUID) -> list[Event]:
    return [
        JobMissed(
            event_id=_id(job_id, "missed"),
            job_id=job_id,
            job_name=JOB_NAME,
            occurred_at=T0 + timedelta(hours=1, seconds=30),
            payload=JobMissedPayload(scheduled_for=T0, grace_s=3600),
        )
    ]


def _run_events(job_id: uuid.UUID, h: History) -> list[Event]:
    events: list[Event] = [
        JobStarted(
            event_id=_id(job_id, "0"),
            job_id=job_id,
            job_name=JOB_NAME,
            occurred_at=T0,
            payload=JobStartedPayload(daos_total=len(h.outcomes), trigger="cron"),
        )
    ]
    failures = []
    for i, failed in enumerate(h.outcomes, start=1):
        envelope: dict[str, object] = {
            "event_id": _id(job_id, str(i)),
            "job_id": job_id,
            "job_name": JOB_NAME,
            "sequence": i,
            "occurred_at": T0 + timedelta(seconds=i),
        }
        if failed:
            failures.append(Failure(dao_id=f"dao-{i}", dao_name=f"DAO {i}", error=f"boom {i}"))
            payload = DaoFailedPayload(
                dao_id=f"dao-{i}", dao_name=f"DAO {i}", error=f"boom {i}", attempts=3
            )
            events.append(DaoFailed.model_validate({**envelope, "payload": payload}))
        else:
            processed = DaoProcessedPayload(
                dao_id=f"dao-{i}", dao_name=f"DAO {i}", score=50, duration_ms=i
            )
            events.append(DaoProcessed.model_validate({**envelope, "payload": processed}))
    end = len(h.outcomes) + 1
    if h.finished:
        failed_count = sum(h.outcomes)
        status = "failed" if h.fatal or failed_count * 2 > len(h.outcomes) else "completed"
        events.append(
            JobFinished(
                event_id=_id(job_id, str(end)),
                job_id=job_id,
                job_name=JOB_NAME,
                sequence=end,
                occurred_at=T0 + timedelta(seconds=end),
                payload=JobFinishedPayload(
                    status=status,
                    daos_total=len(h.outcomes),
                    daos_processed=len(h.outcomes) - failed_count,
                    daos_failed=failed_count,
                    duration_ms=end * 1000,
                    cache_invalidated=not h.fatal,
                    fatal_error="source down" if h.fatal else None,
                    failures=failures,
                ),
            )
        )
    if h.abandoned:
        events.append(
            JobAbandoned(
                event_id=_id(job_id, "abandoned"),
                job_id=job_id,
                job_name=JOB_NAME,
                occurred_at=T0 + timedelta(hours=1),
                payload=JobAbandonedPayload(last_event_at=T0, stale_after_s=1800),
            )
        )
    return events


def _notifications(job_id: uuid.UUID, h: History) -> list[Event]:
    events: list[Event] = []
    for n, (channel, kind, state, minute) in enumerate(h.notifications):
        common: dict[str, object] = {
            "event_id": _id(job_id, f"notification-{n}"),
            "job_id": job_id,
            "job_name": JOB_NAME,
            "occurred_at": T0 + timedelta(minutes=minute),
        }
        if state == "sent":
            payload: object = NotificationSentPayload(channel=channel, kind=kind, attempts=1)
            model: type[Event] = NotificationSent
        elif state == "failed":
            payload = NotificationFailedPayload(channel=channel, kind=kind, attempts=5, error="503")
            model = NotificationFailed
        else:
            payload = NotificationSkippedPayload(channel=channel, kind=kind, reason="no key")
            model = NotificationSkipped
        events.append(model.model_validate({**common, "payload": payload}))
    return events


@st.composite
def job_histories(draw: st.DrawFn) -> History:
    missed = draw(st.integers(0, 4)) == 0  # one history in five is a missed slot
    outcomes = () if missed else tuple(draw(st.lists(st.booleans(), max_size=8)))
    finished = not missed and draw(st.booleans())
    abandoned = not missed and draw(st.booleans())
    notifications = tuple(
        draw(
            st.lists(
                st.tuples(
                    st.sampled_from(["email", "slack"]),
                    st.sampled_from(["missed"] if missed else ["success", "failure"]),
                    st.sampled_from(["sent", "failed", "skipped"]),
                    st.integers(0, 3),
                ),
                max_size=3,
            )
        )
    )
    size = (1 if missed else 1 + len(outcomes) + int(finished) + int(abandoned)) + len(
        notifications
    )
    # Mostly complete histories, sometimes with events still missing (a job in flight).
    arrived = tuple(draw(st.lists(st.booleans() | st.just(True), min_size=size, max_size=size)))
    if not any(arrived):
        arrived = (True, *arrived[1:])
    fatal = not missed and draw(st.booleans())
    return History(outcomes, finished, fatal, abandoned, arrived, notifications, missed)
