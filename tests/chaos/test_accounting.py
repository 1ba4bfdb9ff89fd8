"""The campaign's accounting on its own (no services): how the fake inbox counts emails and
how a run's events are judged. A wrong count here would let a broken build pass."""

from __future__ import annotations

import uuid
from typing import Any

from tests.chaos.providers import CountingResend, email_of
from tests.chaos.runs import ExpectedRun, Seen, one_run_problems, run_problems
from tests.support.fake_resend import Recorded

JOB = str(uuid.uuid4())
OTHER = str(uuid.uuid4())


def request(job: str, subject: str, key: str | None) -> Recorded:
    headers = {"Authorization": "Bearer k"} | ({"Idempotency-Key": key} if key else {})
    body = {"subject": subject, "text": f"View in Admin Dashboard: http://x/admin/jobs/{job}"}
    return Recorded("POST", "/emails", headers, body, 0.0)


def inbox_of(*requests: Recorded) -> dict[tuple[str | None, str], int]:
    resend = CountingResend("k")
    resend.taken.extend(email_of(r) for r in requests)
    return dict(resend.inbox())


def test_a_retry_under_the_same_key_is_one_email() -> None:
    sent = request(JOB, "✅ weekly completed: 3/3 DAOs in 1s", f"{JOB}/success")
    assert inbox_of(sent, sent) == {(JOB, "finished"): 1}


def test_two_keyless_requests_for_one_outcome_are_two_emails() -> None:
    sent = request(JOB, "✅ weekly completed: 3/3 DAOs in 1s", None)
    assert inbox_of(sent, sent) == {(JOB, "finished"): 2}


def test_two_keys_for_one_finished_run_are_two_emails_whatever_their_kinds() -> None:
    success = request(JOB, "✅ weekly completed: 3/3 DAOs in 1s", f"{JOB}/success")
    warning = request(JOB, "⚠️ weekly completed with warnings: 3/3 DAOs", f"{JOB}/warning")
    assert inbox_of(success, warning) == {(JOB, "finished"): 2}


def test_emails_are_counted_per_job_and_outcome_not_in_total() -> None:
    finished = request(JOB, "✅ weekly completed: 3/3 DAOs in 1s", None)
    abandoned = request(OTHER, "🚨 ChainSights Alert: weekly abandoned (no progress for 5s)", None)
    assert inbox_of(finished, abandoned) == {(JOB, "finished"): 1, (OTHER, "abandoned"): 1}


def event(kind: str, sequence: int | None, **payload: Any) -> Seen:
    return Seen(str(uuid.uuid4()), JOB, kind, sequence, payload, f"2026-01-01T00:00:{sequence}")


def complete_run(*daos: str) -> list[Seen]:
    events = [event("JobStarted", 0, daos_total=len(daos))]
    events += [event("DaoProcessed", i, dao_id=d) for i, d in enumerate(daos, 1)]
    totals = {"daos_total": len(daos), "daos_processed": len(daos), "daos_failed": 0}
    return [*events, event("JobFinished", len(daos) + 1, status="completed", **totals)]


def test_a_complete_run_has_no_problem() -> None:
    assert one_run_problems(complete_run("a", "b"), ExpectedRun(frozenset("ab"))) == []


def test_a_gap_and_a_dao_never_reported_are_problems() -> None:
    events = complete_run("a", "b")
    del events[1]
    problems = one_run_problems(events, ExpectedRun(frozenset("ab")))
    assert any("sequences missing" in p for p in problems), problems
    assert any("never reported" in p for p in problems), problems


def test_a_dao_reported_twice_is_a_problem() -> None:
    events = [*complete_run("a"), event("DaoProcessed", None, dao_id="a")]
    problems = one_run_problems(events, ExpectedRun(frozenset("a")))
    assert any("reported twice" in p for p in problems), problems


def test_a_run_not_started_is_a_problem() -> None:
    problems = run_problems("ledger", [], [ExpectedRun(frozenset("a"))])
    assert problems == ["ledger: 0 runs started, 1 expected"]
