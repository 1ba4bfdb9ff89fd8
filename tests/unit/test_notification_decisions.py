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
)
from notifier.decisions import (
    Alert,
    Notification,
    OutcomeEvent,
    PreviousRun,
    build_alert,
    decide_notifications,
    plan_notifications,
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
) -> JobFinished:
    return JobFinished(
        job_id=job_id or uuid4(),
        job_name="weekly-gvs-recalculation",
        sequence=total + 1,
        occurred_at=FINISHED_AT,
        payload=JobFinishedPayload(
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


def previous(status: JobStatus = "completed", total: int = 10) -> PreviousRun:
    return PreviousRun(status=status, daos_total=total, finished_at=LAST_WEEK)


def decide(
    event: OutcomeEvent, before: PreviousRun | None = None, *, revalidation: bool = True
) -> list[Notification]:
    return decide_notifications(event, before, revalidation_configured=revalidation)


def test_a_completed_run_gets_the_success_email_only() -> None:
    assert decide(finished(), previous()) == [Notification("email", "success")]


def test_a_first_ever_completed_run_gets_the_success_email_only() -> None:
    assert decide(finished(), None) == [Notification("email", "success")]


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
    assert decide(event, None) == [Notification("email", "missed"), Notification("slack", "missed")]


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


def test_a_previous_run_that_finished_after_this_one_is_not_its_predecessor() -> None:
    later = PreviousRun(status="failed", daos_total=100, finished_at=FINISHED_AT)
    assert decide(finished(), later) == [Notification("email", "success")]


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
        None,
        revalidation_configured=False,
        admin_base_url="https://chainsights.one/",
    )
    assert alert.admin_url == f"https://chainsights.one/admin/jobs/{job_id}"


def test_the_alert_names_the_job_for_people() -> None:
    alert = build_alert(
        finished(), "success", None, revalidation_configured=False, admin_base_url=ADMIN
    )
    assert alert.job_title == "Weekly GVS Recalculation"


def test_an_alert_survives_a_json_round_trip_for_the_delivery_record() -> None:
    alert = build_alert(
        finished("failed", failed=6),
        "failure",
        None,
        revalidation_configured=True,
        admin_base_url=ADMIN,
    )
    assert Alert.model_validate_json(alert.model_dump_json()) == alert


def test_building_an_alert_of_a_kind_foreign_to_the_event_is_refused() -> None:
    with pytest.raises(ValueError, match="'missed' does not apply to JobFinished"):
        build_alert(finished(), "missed", None, revalidation_configured=False, admin_base_url=ADMIN)


def test_plan_pairs_each_notification_with_an_alert_of_its_kind() -> None:
    plan = plan_notifications(
        finished(failed=3), previous(), revalidation_configured=True, admin_base_url=ADMIN
    )
    assert [(n.kind, a.kind) for n, a in plan] == [("success", "success"), ("warning", "warning")]


@st.composite
def outcomes(draw: st.DrawFn) -> tuple[JobFinished, PreviousRun | None, bool]:
    # A JobFinished lists at most 100 failures, and finished() lists one per failed DAO.
    total = draw(st.integers(0, 100))
    failed = draw(st.integers(0, total))
    status: JobStatus = draw(st.sampled_from(["completed", "failed"]))
    event = finished(status, total=total, failed=failed, cache_invalidated=draw(st.booleans()))
    before = draw(
        st.none()
        | st.builds(
            PreviousRun,
            status=st.sampled_from(["completed", "failed"]),
            daos_total=st.integers(0, 300),
            finished_at=st.just(LAST_WEEK),
        )
    )
    return event, before, draw(st.booleans())


@given(outcomes())
def test_every_finished_job_gets_exactly_one_email_and_at_most_one_slack_message(
    outcome: tuple[JobFinished, PreviousRun | None, bool],
) -> None:
    event, before, revalidation = outcome
    notifications = decide(event, before, revalidation=revalidation)
    channels = [n.channel for n in notifications]
    assert channels in (["email"], ["email", "slack"])
    assert decide(event, before, revalidation=revalidation) == notifications
