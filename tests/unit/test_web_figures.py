"""Progress, percentiles and run statistics: pure functions of rows and a clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from job_ledger.web.figures import job_stats, percentile, progress_of
from job_ledger.web.rows import Failure, JobLog, RunSample, group_failures
from tests.support.job_logs import job_log

NOW = datetime(2025, 12, 22, 12, tzinfo=UTC)


def job(
    status: str = "running",
    processed: int = 0,
    failed: int = 0,
    total: int = 10,
    started_s_ago: float = 100,
) -> JobLog:
    started = NOW - timedelta(seconds=started_s_ago)
    return job_log(
        started,
        status=status,
        processed=processed,
        failed=failed,
        total=total,
        last_event_at=started,
        events_received=1,
    )


def test_progress_rate_counts_processed_and_failed_daos_since_the_start() -> None:
    p = progress_of(job(processed=30, failed=10, total=200, started_s_ago=80), NOW)
    assert p is not None
    assert (p.rate_per_second, p.eta_seconds, p.percent) == (0.5, 320, 20.0)


def test_progress_has_no_rate_or_eta_before_the_first_dao() -> None:
    p = progress_of(job(total=50), NOW)
    assert p is not None and (p.rate_per_second, p.eta_seconds, p.percent) == (None, None, 0.0)


def test_progress_eta_is_zero_when_every_dao_is_done_but_the_job_not_finished() -> None:
    p = progress_of(job(processed=10, total=10), NOW)
    assert p is not None and p.eta_seconds == 0


def test_a_finished_job_has_no_progress() -> None:
    assert progress_of(job(status="completed"), NOW) is None
    assert progress_of(job(status="failed"), NOW) is None


def test_a_job_with_no_daos_is_fully_done() -> None:
    p = progress_of(job(total=0), NOW)
    assert p is not None and p.percent == 100.0


def test_percentile_is_nearest_rank_and_none_without_values() -> None:
    values = list(range(1, 21))  # 1..20
    assert (percentile(values, 0.5), percentile(values, 0.95), percentile(values, 1.0)) == (
        10,
        19,
        20,
    )
    assert percentile([7], 0.95) == 7
    assert percentile([], 0.5) is None


def test_stats_failure_rate_counts_finished_runs_and_durations_skip_running_ones() -> None:
    runs = [
        RunSample("running", None, NOW, "running"),
        RunSample("failed", 4000, NOW, "failed"),
        RunSample("completed", 1000, NOW, "completed"),
        RunSample("completed", 2000, NOW, "completed"),
        RunSample("completed", None, NOW, "completed"),
    ]
    stats = job_stats(runs, NOW)
    assert (stats.runs, stats.finished, stats.failed, stats.running) == (5, 4, 1, 1)
    assert stats.failure_rate == 0.25
    assert (stats.duration_p50_ms, stats.duration_p95_ms) == (2000, 4000)


def test_a_missed_slot_counts_as_a_failure_and_a_miss_but_not_as_a_duration() -> None:
    runs = [
        RunSample("failed", None, NOW, "missed"),
        RunSample("completed", 1000, NOW, "completed"),
    ]
    stats = job_stats(runs, NOW)
    assert (stats.runs, stats.finished, stats.failed, stats.missed) == (2, 2, 1, 1)
    assert stats.failure_rate == 0.5
    assert (stats.duration_p50_ms, stats.duration_p95_ms) == (1000, 1000)


def test_stats_without_runs_are_empty_not_zero() -> None:
    stats = job_stats([], None)
    assert (stats.failure_rate, stats.duration_p50_ms, stats.last_success_at) == (None, None, None)


def test_failures_group_by_exact_message_biggest_first_ties_in_order_of_failure() -> None:
    groups = group_failures(
        [
            Failure("a", "A", "timeout"),
            Failure("b", "B", "HTTP 502"),
            Failure("c", "C", "HTTP 502"),
            Failure("d", "D", "timeout"),
            Failure("e", "E", "Timeout"),
        ]
    )
    assert [(g.error, g.count, [d for d, _ in g.daos]) for g in groups] == [
        ("timeout", 2, ["a", "d"]),
        ("HTTP 502", 2, ["b", "c"]),
        ("Timeout", 1, ["e"]),
    ]
    assert group_failures(None) == []
