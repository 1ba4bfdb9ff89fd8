"""The fold, without I/O: any order gives the same row, and the status and column rules hold.

The generated histories come from ``tests.support.ledger_histories``, which the integration
property test feeds to Postgres as well.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.events import Envelope, Event, NotificationFailed, NotificationSent
from job_ledger.job_row import JobRow
from job_ledger.notifications import latest_outcomes
from job_ledger.projection import JobDelta, fold_jobs, job_deltas
from tests.support.ledger_histories import JOB_NAME, T0, History, build_events, job_histories


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


def _run_events(history: History) -> tuple[uuid.UUID, list[Event]]:
    job_id = uuid.uuid4()
    events: list[Event] = [
        e
        for e in history.events(job_id)
        if not isinstance(e, NotificationSent | NotificationFailed)
    ]
    return job_id, events


def _delta(job_id: uuid.UUID, events: list[Event]) -> JobDelta:
    return job_deltas(events).get(job_id, JobDelta(job_id))


@settings(max_examples=200)
@given(history=job_histories(), data=st.data())
def test_merging_the_deltas_of_any_split_gives_the_row_of_the_whole_fold(
    history: History, data: st.DataObject
) -> None:
    job_id, events = _run_events(history)
    shuffled = data.draw(st.permutations(events))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(shuffled)), min_size=2, max_size=2)))
    parts = [shuffled[: cuts[0]], shuffled[cuts[0] : cuts[1]], shuffled[cuts[1] :]]
    a, b, c = (_delta(job_id, part) for part in parts)
    expected = fold_jobs(events).get(job_id)
    if expected is None:  # only notifications: no row, and no delta makes one
        return
    assert a.merged(b).merged(c).row() == expected
    assert a.merged(b.merged(c)).row() == expected
    assert c.merged(a).merged(b).row() == expected


def test_a_delta_of_another_job_is_refused() -> None:
    with pytest.raises(ValueError, match="merged into job"):
        JobDelta(uuid.uuid4()).merged(JobDelta(uuid.uuid4()))


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
    fold = JobDelta(events[0].job_id)
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
    fold = JobDelta(uuid.uuid4())
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


def test_a_missed_slot_is_a_failed_cron_row_dated_from_its_slot() -> None:
    history = History((), False, False, False, (True,), (), missed=True)
    [missed] = build_events(uuid.uuid4(), history)
    row = _row([missed])
    assert (row.status, row.started_at, row.completed_at, row.scheduled_for) == (
        "failed",
        T0,
        missed.occurred_at,
        T0,
    )
    assert (row.trigger, row.daos_total, row.daos_processed, row.has_started) == (
        "cron",
        0,
        0,
        False,
    )
    assert row.fatal_error == (
        "No run started within 1h of the slot scheduled for 2026-03-02 00:00 UTC."
    )
