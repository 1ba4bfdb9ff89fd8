"""The history chart: one linked bar per run, oldest first, every text escaped."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from job_ledger.web.charts import runs_chart
from job_ledger.web.display import event_summary
from job_ledger.web.rows import JobLog
from tests.support.job_logs import job_log

NOW = datetime(2025, 12, 22, 12, tzinfo=UTC)


def run(days_ago: int, status: str, duration_ms: int | None, failed: int) -> JobLog:
    return job_log(
        NOW - timedelta(days=days_ago),
        status=status,
        processed=1,
        failed=failed,
        total=2,
        duration_ms=duration_ms,
    )


def test_one_linked_bar_per_run_oldest_left_scaled_to_the_longest() -> None:
    newest, older, oldest = (
        run(0, "running", None, 0),
        run(7, "failed", 2000, 5),
        run(14, "completed", 1000, 0),
    )
    svg = str(runs_chart([newest, older, oldest], NOW))
    links = re.findall(r'<a href="/admin/jobs/([0-9a-f-]+)">', svg)
    assert links == [str(oldest.id), str(older.id), str(newest.id)]
    heights = [
        float(h) for h in re.findall(r'<rect class="run-bar [a-z]+"[^>]* height="([0-9.]+)"', svg)
    ]
    # The running job started just now: a sliver; the failed one twice the completed one.
    assert heights[2] == 1.0 and abs(heights[1] - 2 * heights[0]) < 0.2
    assert svg.count("<circle") == 3 and "5 failed" in svg


def test_no_runs_is_a_note_not_an_empty_chart() -> None:
    assert "No runs yet" in runs_chart([], NOW)


def test_timeline_summaries_read_missing_fields_as_question_marks() -> None:
    assert event_summary("DaoFailed", {"dao_name": "<b>x</b>", "error": "boom"}) == (
        "<b>x</b> (?) failed after ? attempts: boom"
    )
    assert event_summary("Unknown", {"a": 1}) == "a=1"
