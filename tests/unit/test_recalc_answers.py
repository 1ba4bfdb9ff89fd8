"""What the worker refuses before any database work, and how a request's answer is keyed."""

from __future__ import annotations

from uuid import uuid4

from contracts import RunRequested
from recalculator.answers import accepted_event, answer_event_id, refusal_before_running

JOB = "weekly-gvs-recalculation"


def test_a_request_for_another_job_is_refused_naming_both_jobs() -> None:
    command = RunRequested(job_name="nightly-other", trigger="manual")
    assert refusal_before_running(command, JOB) == (
        f"unknown job name nightly-other: this worker runs {JOB}"
    )


def test_an_empty_dao_list_is_refused_and_null_asks_for_every_dao() -> None:
    empty = RunRequested(job_name=JOB, trigger="retry", dao_ids=[])
    assert refusal_before_running(empty, JOB) == (
        "no DAO ids given: a run of chosen DAOs needs at least one (null asks for all)"
    )
    assert refusal_before_running(RunRequested(job_name=JOB), JOB) is None
    assert refusal_before_running(RunRequested(job_name=JOB, dao_ids=["aave"]), JOB) is None


def test_an_answer_has_the_same_event_id_every_time_and_accepted_differs_from_refused() -> None:
    request_id = uuid4()
    assert answer_event_id(request_id, "refused") == answer_event_id(request_id, "refused")
    assert answer_event_id(request_id, "accepted") != answer_event_id(request_id, "refused")
    assert answer_event_id(uuid4(), "refused") != answer_event_id(request_id, "refused")


def test_run_accepted_says_the_scope_and_how_many_distinct_daos_were_asked_for() -> None:
    job_id, request_id = uuid4(), uuid4()
    subset = accepted_event(
        job_id=job_id,
        job_name=JOB,
        request_id=request_id,
        trigger="retry",
        dao_ids=["a", "b", "a"],
    )
    assert subset.job_id == job_id
    assert subset.payload.model_dump() == {
        "request_id": request_id,
        "trigger": "retry",
        "scope": "subset",
        "daos_requested": 2,
    }
    every = accepted_event(
        job_id=job_id, job_name=JOB, request_id=request_id, trigger="cron", dao_ids=None
    )
    assert (every.payload.scope, every.payload.daos_requested) == ("all", None)
