"""Which notifications each outcome gets: every row of notifier.decisions' table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.events import (
    Failure,
    JobAbandoned,
    JobAbandonedPayload,
    JobFinished,
    JobFinishedPayload,
    JobMissed,
    JobMissedPayload,
    JobStatus,
    Scope,
)
from notifier.alert import Alert
from notifier.decisions import (
    Notification,
    build_alert,
    decide_notifications,
    plan_notifications,
)
from notifier.history import (
    AlertStatus,
    Baseline,
    History,
    OutcomeEvent,
    PreviousOutcome,
    Setback,
    remembered,
)

FINISHED_AT = datetime(2025, 12, 22, 0, 5, 32, tzinfo=UTC)
LAST_WEEK = FINISHED_AT - timedelta(days=7)
ADMIN = "https://chainsights.one"


def finished(
    status: JobStatus = "completed",
    *,
    total: int = 10,
    failed: int = 0,
    cache_invalidated: bool = True,
    fatal_error: str | None = None,
    job_id: UUID | None = None,
    scope: Scope | None = "all",
    occurred_at: datetime = FINISHED_AT,
) -> JobFinished:
    return JobFinished(
        job_id=job_id or uuid4(),
        job_name="weekly-gvs-recalculation",
        sequence=total + 1,
        occurred_at=occurred_at,
        payload=JobFinishedPayload(
            scope=scope,
            status=status,
            daos_total=total,
            daos_processed=total - failed,
            daos_failed=failed,
            duration_ms=332_000,
            cache_invalidated=cache_invalidated,
            fatal_error=fatal_error,
            failures=[
                Failure(dao_id=f"dao-{i}", dao_name=f"DAO {i}", error="timeout")
                for i in range(failed)
            ],
        ),
    )


def previous(status: AlertStatus = "completed", total: int = 10) -> History:
    """Last week's outcome; a completed one of all DAOs is also the drop baseline."""
    baseline = Baseline(daos_total=total, finished_at=LAST_WEEK) if status == "completed" else None
    return History(PreviousOutcome(status, LAST_WEEK), baseline)


def decide(
    event: OutcomeEvent, before: History | None = None, *, revalidation: bool = True
) -> list[Notification]:
    return decide_notifications(event, before or History(), revalidation_configured=revalidation)


def test_a_completed_run_gets_the_success_email_only() -> None:
    assert decide(finished(), previous()) == [Notification("email", "success")]


def test_a_first_ever_completed_run_gets_the_success_email_only() -> None:
    assert decide(finished(), History()) == [Notification("email", "success")]


def test_a_completed_run_with_30_percent_failures_also_warns_slack() -> None:
    assert decide(finished(failed=3), previous()) == [
        Notification("email", "success"),
        Notification("slack", "warning"),
    ]


def test_exactly_20_percent_failures_does_not_reach_slack() -> None:
    assert decide(finished(failed=2), previous()) == [Notification("email", "success")]


def test_a_failed_run_gets_the_failure_email_and_slack() -> None:
    assert decide(finished("failed", failed=6), previous()) == [
        Notification("email", "failure"),
        Notification("slack", "failure"),
    ]


def test_a_run_stopped_by_a_fatal_error_is_a_failure_even_with_no_daos() -> None:
    event = finished("failed", total=0, fatal_error="database unreachable")
    assert decide(event, previous()) == [
        Notification("email", "failure"),
        Notification("slack", "failure"),
    ]


def test_an_abandoned_job_gets_the_abandoned_email_and_slack() -> None:
    event = JobAbandoned(
        job_id=uuid4(),
        job_name="weekly-gvs-recalculation",
        payload=JobAbandonedPayload(last_event_at=LAST_WEEK, stale_after_s=3600),
    )
    assert decide(event, previous("failed")) == [
        Notification("email", "abandoned"),
        Notification("slack", "abandoned"),
    ]


def test_a_missed_run_gets_the_missed_email_and_slack() -> None:
    event = JobMissed(
        job_id=uuid4(),
        job_name="weekly-gvs-recalculation",
        payload=JobMissedPayload(scheduled_for=LAST_WEEK, grace_s=1800),
    )
    assert decide(event) == [Notification("email", "missed"), Notification("slack", "missed")]


def test_a_completed_run_after_a_failed_one_is_announced_as_recovered() -> None:
    assert decide(finished(), previous("failed")) == [
        Notification("email", "recovered"),
        Notification("slack", "recovered"),
    ]


def test_a_recovery_with_many_failures_sends_the_slack_warning_instead_of_the_note() -> None:
    assert decide(finished(failed=3), previous("failed")) == [
        Notification("email", "recovered"),
        Notification("slack", "warning"),
    ]


def test_a_failed_run_after_a_failed_one_is_a_failure_not_a_recovery() -> None:
    assert decide(finished("failed", failed=6), previous("failed"))[0] == Notification(
        "email", "failure"
    )


def test_a_25_percent_drop_in_daos_total_turns_the_email_into_a_warning() -> None:
    assert decide(finished(total=75), previous(total=100)) == [
        Notification("email", "warning"),
        Notification("slack", "warning"),
    ]


def test_an_exact_20_percent_drop_is_no_warning() -> None:
    assert decide(finished(total=80), previous(total=100)) == [Notification("email", "success")]


def test_a_drop_below_a_failed_previous_run_is_no_warning_but_a_recovery() -> None:
    assert decide(finished(total=50), previous("failed", total=100))[0] == Notification(
        "email", "recovered"
    )


RETRY_AT = LAST_WEEK + timedelta(days=1)


def test_a_3_dao_retry_after_a_50_dao_week_is_no_drop() -> None:
    retry = finished(total=3, scope="subset")
    assert decide(retry, previous(total=50)) == [Notification("email", "success")]


def test_the_next_30_dao_week_after_that_retry_is_measured_against_the_50_dao_week() -> None:
    # The retry is the previous outcome; the baseline is still last week's run of all DAOs.
    after_retry = History(PreviousOutcome("completed", RETRY_AT), Baseline(50, LAST_WEEK))
    week = finished(total=30, scope="all")
    alert = build_alert(
        week, "warning", after_retry, revalidation_configured=True, admin_base_url=ADMIN
    )
    assert decide(week, after_retry) == [
        Notification("email", "warning"),
        Notification("slack", "warning"),
    ]
    assert alert.warnings == (
        "Only 30 DAOs were scored, 40% fewer than the 50 of the last completed run of all "
        "DAOs: DAOs may be missing from the rankings.",
    )


def test_a_completed_run_that_scored_no_dao_is_a_warning_not_a_success() -> None:
    empty = finished(total=0, scope="all")
    alert = build_alert(
        empty, "warning", previous(total=50), revalidation_configured=True, admin_base_url=ADMIN
    )
    assert decide(empty, History()) == [
        Notification("email", "warning"),
        Notification("slack", "warning"),
    ]
    # Said once, not also as a 100% drop.
    assert alert.warnings == (
        "No DAO was scored (none was found to score): the rankings were not updated.",
    )


def test_a_run_of_unknown_scope_is_not_checked_for_a_drop() -> None:
    assert decide(finished(total=3, scope=None), previous(total=50)) == [
        Notification("email", "success")
    ]


@pytest.mark.parametrize(
    ("event", "is_baseline"),
    [
        (finished(scope="all"), True),
        (finished(scope="subset"), False),
        (finished(scope=None), False),
        (finished("failed", failed=6, scope="all"), False),
    ],
    ids=["completed-all", "completed-subset", "completed-unknown-scope", "failed-all"],
)
def test_only_a_completed_run_of_all_daos_is_remembered_as_a_drop_baseline(
    event: JobFinished, is_baseline: bool
) -> None:
    assert remembered(event).is_baseline is is_baseline


def test_abandoned_runs_and_missed_slots_are_remembered_as_outcomes_without_counts() -> None:
    abandoned = JobAbandoned(
        job_id=uuid4(),
        job_name="weekly-gvs-recalculation",
        occurred_at=LAST_WEEK,
        payload=JobAbandonedPayload(last_event_at=LAST_WEEK, stale_after_s=3600),
    )
    missed = JobMissed(
        job_id=uuid4(),
        job_name="weekly-gvs-recalculation",
        occurred_at=LAST_WEEK,
        payload=JobMissedPayload(scheduled_for=LAST_WEEK, grace_s=1800),
    )
    assert (remembered(abandoned).status, remembered(abandoned).daos_total) == ("abandoned", None)
    assert (remembered(missed).status, remembered(missed).is_baseline) == ("missed", False)


@pytest.mark.parametrize(
    ("setback", "says"),
    [
        ("failed", "the previous run failed"),
        ("abandoned", "the previous run was abandoned (it stopped reporting progress)"),
        ("missed", "the last scheduled run was missed (it never started)"),
    ],
)
def test_a_completed_run_after_a_failed_abandoned_or_missed_one_is_recovered(
    setback: Setback, says: str
) -> None:
    history = History(PreviousOutcome(setback, LAST_WEEK), Baseline(10, LAST_WEEK - timedelta(7)))
    alert = build_alert(
        finished(), "recovered", history, revalidation_configured=True, admin_base_url=ADMIN
    )
    assert decide(finished(), history) == [
        Notification("email", "recovered"),
        Notification("slack", "recovered"),
    ]
    assert (alert.recovered_from, alert.setback) == (setback, says)


def test_a_completed_run_after_a_completed_one_is_a_plain_success() -> None:
    history = History(PreviousOutcome("completed", LAST_WEEK), Baseline(10, LAST_WEEK))
    assert decide(finished(), history) == [Notification("email", "success")]


def test_a_stored_alert_that_says_recovered_true_reads_as_recovered_from_a_failed_run() -> None:
    stored = build_alert(
        finished(),
        "recovered",
        previous("failed"),
        revalidation_configured=True,
        admin_base_url=ADMIN,
    ).model_dump(mode="json")
    del stored["recovered_from"]
    assert Alert.model_validate({**stored, "recovered": True}).recovered_from == "failed"


def test_a_cache_not_revalidated_warns_when_revalidation_is_configured() -> None:
    event = finished(cache_invalidated=False)
    assert decide(event, previous(), revalidation=True) == [
        Notification("email", "warning"),
        Notification("slack", "warning"),
    ]


def test_a_cache_not_revalidated_is_fine_when_revalidation_is_not_configured() -> None:
    event = finished(cache_invalidated=False)
    assert decide(event, previous(), revalidation=False) == [Notification("email", "success")]


def test_a_warning_outranks_a_recovery_and_the_alert_still_says_recovered() -> None:
    event = finished(cache_invalidated=False)
    notifications = decide(event, previous("failed"))
    alert = build_alert(
        event, "warning", previous("failed"), revalidation_configured=True, admin_base_url=ADMIN
    )
    assert notifications[0] == Notification("email", "warning")
    assert alert.recovered


def test_an_outcome_at_or_after_this_one_is_neither_its_predecessor_nor_its_baseline() -> None:
    later = History(PreviousOutcome("failed", FINISHED_AT), Baseline(100, FINISHED_AT))
    assert decide(finished(total=10), later) == [Notification("email", "success")]


def test_the_warning_alert_says_why_in_sentences() -> None:
    alert = build_alert(
        finished(total=75, cache_invalidated=False),
        "warning",
        previous(total=100),
        revalidation_configured=True,
        admin_base_url=ADMIN,
    )
    assert any("25% fewer than the 100" in w for w in alert.warnings)
    assert any("cache was not revalidated" in w for w in alert.warnings)


def test_the_alert_links_to_the_jobs_admin_page() -> None:
    job_id = uuid4()
    alert = build_alert(
        finished(job_id=job_id),
        "success",
        History(),
        revalidation_configured=False,
        admin_base_url="https://chainsights.one/",
    )
    assert alert.admin_url == f"https://chainsights.one/admin/jobs/{job_id}"


def test_the_alert_names_the_job_for_people() -> None:
    alert = build_alert(
        finished(), "success", History(), revalidation_configured=False, admin_base_url=ADMIN
    )
    assert alert.job_title == "Weekly GVS Recalculation"


def test_an_alert_survives_a_json_round_trip_for_the_delivery_record() -> None:
    alert = build_alert(
        finished("failed", failed=6),
        "failure",
        History(),
        revalidation_configured=True,
        admin_base_url=ADMIN,
    )
    assert Alert.model_validate_json(alert.model_dump_json()) == alert


def test_building_an_alert_of_a_kind_foreign_to_the_event_is_refused() -> None:
    with pytest.raises(ValueError, match="'missed' does not apply to JobFinished"):
        build_alert(
            finished(), "missed", History(), revalidation_configured=False, admin_base_url=ADMIN
        )


def test_plan_pairs_each_notification_with_an_alert_of_its_kind() -> None:
    plan = plan_notifications(
        finished(failed=3), previous(), revalidation_configured=True, admin_base_url=ADMIN
    )
    assert [(n.kind, a.kind) for n, a in plan] == [("success", "success"), ("warning", "warning")]


@st.composite
def outcomes(draw: st.DrawFn) -> tuple[JobFinished, History, bool]:
    # A JobFinished lists at most 100 failures, and finished() lists one per failed DAO.
    total = draw(st.integers(0, 100))
    failed = draw(st.integers(0, total))
    status: JobStatus = draw(st.sampled_from(["completed", "failed"]))
    scope: Scope | None = draw(st.sampled_from(["all", "subset", None]))
    event = finished(
        status, total=total, failed=failed, cache_invalidated=draw(st.booleans()), scope=scope
    )
    before = History(
        draw(
            st.none()
            | st.builds(
                PreviousOutcome,
                status=st.sampled_from(["completed", "failed", "abandoned", "missed"]),
                occurred_at=st.just(LAST_WEEK),
            )
        ),
        draw(
            st.none()
            | st.builds(Baseline, daos_total=st.integers(1, 300), finished_at=st.just(LAST_WEEK))
        ),
    )
    return event, before, draw(st.booleans())


@given(outcomes())
def test_every_finished_job_gets_exactly_one_email_and_at_most_one_slack_message(
    outcome: tuple[JobFinished, History, bool],
) -> None:
    event, before, revalidation = outcome
    notifications = decide(event, before, revalidation=revalidation)
    channels = [n.channel for n in notifications]
    assert channels in (["email"], ["email", "slack"])
    assert decide(event, before, revalidation=revalidation) == notifications
