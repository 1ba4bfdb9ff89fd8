"""The fold, without I/O: any order gives the same row, and the status and column rules hold.

``job_histories`` is also the generator the integration property test feeds to Postgres.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.events import (
    DaoFailed,
    DaoFailedPayload,
    DaoProcessed,
    DaoProcessedPayload,
    Envelope,
    Event,
    Failure,
    JobAbandoned,
    JobAbandonedPayload,
    JobFinished,
    JobFinishedPayload,
    JobStarted,
    JobStartedPayload,
    NotificationFailed,
    NotificationFailedPayload,
    NotificationSent,
    NotificationSentPayload,
)
from job_ledger.notifications import latest_outcomes
from job_ledger.projection import JobFold, JobRow, fold_jobs

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
JOB_NAME = "weekly-gvs-recalculation"


@dataclass(frozen=True)
class History:
    """A generated job: which DAOs fail, whether it finished or was abandoned, what arrived."""

    outcomes: tuple[bool, ...]  # True: the DAO failed
    finished: bool
    fatal: bool
    abandoned: bool
    arrived: tuple[bool, ...]  # per event of the full history, whether it was delivered at all
    notifications: tuple[tuple[str, str, bool, int], ...]  # channel, kind, sent?, minute

    def events(self, job_id: uuid.UUID) -> list[Event]:
        """The delivered events for ``job_id``, in sequence order (ids derived from job_id)."""
        everything = build_events(job_id, self)
        return [e for e, keep in zip(everything, self.arrived, strict=True) if keep]


def _id(job_id: uuid.UUID, name: str) -> uuid.UUID:
    return uuid.uuid5(job_id, name)


def build_events(job_id: uuid.UUID, h: History) -> list[Event]:
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
        at = T0 + timedelta(seconds=i)
        if failed:
            failures.append(Failure(dao_id=f"dao-{i}", dao_name=f"DAO {i}", error=f"boom {i}"))
            events.append(
                DaoFailed(
                    event_id=_id(job_id, str(i)),
                    job_id=job_id,
                    job_name=JOB_NAME,
                    sequence=i,
                    occurred_at=at,
                    payload=DaoFailedPayload(
                        dao_id=f"dao-{i}", dao_name=f"DAO {i}", error=f"boom {i}", attempts=3
                    ),
                )
            )
        else:
            events.append(
                DaoProcessed(
                    event_id=_id(job_id, str(i)),
                    job_id=job_id,
                    job_name=JOB_NAME,
                    sequence=i,
                    occurred_at=at,
                    payload=DaoProcessedPayload(
                        dao_id=f"dao-{i}", dao_name=f"DAO {i}", score=50, duration_ms=i
                    ),
                )
            )
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
    for n, (channel, kind, sent, minute) in enumerate(h.notifications):
        common: dict[str, object] = {
            "event_id": _id(job_id, f"notification-{n}"),
            "job_id": job_id,
            "job_name": JOB_NAME,
            "occurred_at": T0 + timedelta(minutes=minute),
        }
        events.append(
            NotificationSent.model_validate(
                {
                    **common,
                    "payload": NotificationSentPayload(channel=channel, kind=kind, attempts=1),
                }
            )
            if sent
            else NotificationFailed.model_validate(
                {
                    **common,
                    "payload": NotificationFailedPayload(
                        channel=channel, kind=kind, attempts=5, error="503"
                    ),
                }
            )
        )
    return events


@st.composite
def job_histories(draw: st.DrawFn) -> History:
    outcomes = tuple(draw(st.lists(st.booleans(), max_size=8)))
    finished = draw(st.booleans())
    abandoned = draw(st.booleans())
    notifications = tuple(
        draw(
            st.lists(
                st.tuples(
                    st.sampled_from(["email", "slack"]),
                    st.sampled_from(["success", "failure"]),
                    st.booleans(),
                    st.integers(0, 3),
                ),
                max_size=3,
            )
        )
    )
    size = 1 + len(outcomes) + int(finished) + int(abandoned) + len(notifications)
    # Mostly complete histories, sometimes with events still missing (a job in flight).
    arrived = tuple(draw(st.lists(st.booleans() | st.just(True), min_size=size, max_size=size)))
    if not any(arrived):
        arrived = (True, *arrived[1:])
    return History(outcomes, finished, draw(st.booleans()), abandoned, arrived, notifications)


@settings(max_examples=200)
@given(history=job_histories(), data=st.data())
def test_any_order_folds_to_the_same_row(history: History, data: st.DataObject) -> None:
    job_id = uuid.uuid4()
    events = [
        e
        for e in history.events(job_id)
        if not isinstance(e, NotificationSent | NotificationFailed)
    ]
    shuffled = data.draw(st.permutations(events))
    assert fold_jobs(shuffled) == fold_jobs(events)


def _job(*names: str, outcomes: tuple[bool, ...] = (False, True, False)) -> list[Event]:
    history = History(
        outcomes=outcomes,
        finished=True,
        fatal=False,
        abandoned=True,
        arrived=(True,) * (len(outcomes) + 3),
        notifications=(),
    )
    job_id = uuid.uuid5(uuid.NAMESPACE_URL, "job")
    chosen = []
    for event in build_events(job_id, history):
        if event.event_type in names:
            chosen.append(event)
    return chosen


def _row(events: list[Event]) -> JobRow:
    fold = JobFold(events[0].job_id)
    for event in events:
        fold.apply(event)
    return fold.row()


def test_a_job_is_running_until_it_finishes() -> None:
    row = _row(_job("JobStarted", "DaoProcessed", "DaoFailed"))
    assert (row.status, row.completed_at, row.expected_events) == ("running", None, None)


def test_job_finished_decides_the_status_even_after_an_abandon() -> None:
    row = _row(_job("JobStarted", "JobFinished", "JobAbandoned"))
    assert row.status == "completed"
    assert row.completed_at == T0 + timedelta(seconds=4)


def test_an_abandoned_job_is_failed_and_completed_at_the_abandon() -> None:
    row = _row(_job("JobStarted", "DaoProcessed", "JobAbandoned"))
    assert (row.status, row.completed_at) == ("failed", T0 + timedelta(hours=1))


def test_before_job_started_the_earliest_event_gives_started_at() -> None:
    row = _row(_job("DaoFailed", "DaoProcessed"))
    assert (row.has_started, row.started_at, row.daos_total) == (
        False,
        T0 + timedelta(seconds=1),
        0,
    )


def test_errors_are_in_sequence_order_with_the_story_keys() -> None:
    events = _job("DaoFailed", outcomes=(True, False, True))
    row = _row(list(reversed(events)))
    assert row.errors == [
        {"daoId": "dao-1", "daoName": "DAO 1", "error": "boom 1"},
        {"daoId": "dao-3", "daoName": "DAO 3", "error": "boom 3"},
    ]


def test_a_job_without_failures_has_null_errors() -> None:
    assert _row(_job("JobStarted", "DaoProcessed")).errors is None


def test_completeness_counts_the_sequenced_events_against_job_finished() -> None:
    row = _row(_job("JobStarted", "DaoProcessed", "DaoFailed", "JobFinished", "JobAbandoned"))
    assert (row.events_received, row.expected_events, row.last_sequence) == (5, 5, 4)


def test_counts_come_from_the_events_and_the_total_from_job_finished() -> None:
    row = _row(_job("DaoProcessed", "DaoFailed", "JobFinished"))
    assert (row.daos_processed, row.daos_failed, row.daos_total) == (2, 1, 3)


def test_an_event_of_another_job_is_refused() -> None:
    fold = JobFold(uuid.uuid4())
    with pytest.raises(ValueError, match="belongs to job"):
        fold.apply(_job("JobStarted")[0])


def test_the_latest_notification_outcome_wins_whatever_the_order() -> None:
    job_id = uuid.uuid4()
    common = {"job_id": job_id, "job_name": JOB_NAME}
    failed = NotificationFailed.model_validate(
        {
            **common,
            "occurred_at": T0,
            "payload": {"channel": "email", "kind": "failure", "attempts": 5, "error": "503"},
        }
    )
    sent = NotificationSent.model_validate(
        {
            **common,
            "occurred_at": T0 + timedelta(minutes=5),
            "payload": {"channel": "email", "kind": "failure", "attempts": 6},
        }
    )
    events: list[Envelope] = [sent, failed]
    assert latest_outcomes(events) == latest_outcomes(list(reversed(events))) == [sent]
