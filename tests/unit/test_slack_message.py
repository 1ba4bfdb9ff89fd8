"""The Slack Block Kit payload: content, escaping and Slack's size limits."""

from __future__ import annotations

from typing import Any, get_args
from zoneinfo import ZoneInfo

import pytest

from contracts.events import Failure, NotificationKind
from notifier import slack_message
from notifier.alert import Alert
from notifier.slack_message import build_slack_payload, escape_slack_text
from tests.support.alerts import ADMIN_URL, six_of_ten_failed, weekly_run_alert

EVIL_ERROR = "</ul><script> & <!channel>"


def alert(kind: NotificationKind = "failure", **changes: Any) -> Alert:
    """Whatever its kind, the run lists two of its six failed DAOs, one in HTML."""
    return weekly_run_alert(kind, **(six_of_ten_failed(EVIL_ERROR) | changes))


def texts(payload: dict[str, Any]) -> list[str]:
    """Every mrkdwn text Slack will interpret, the fallback included."""
    blocks = payload["blocks"]
    return [payload["text"]] + [b["text"]["text"] for b in blocks if b["type"] == "section"]


def whole(payload: dict[str, Any]) -> str:
    return "\n".join(texts(payload))


def many_failures(count: int) -> tuple[Failure, ...]:
    # The longest errors the contract allows, made of characters that grow when escaped.
    return tuple(
        Failure(dao_id=f"dao-{i}", dao_name=f"DAO <{i}> & co " * 20, error="<&>" * 666)
        for i in range(count)
    )


def test_escaping_covers_the_three_characters_slack_reserves() -> None:
    assert escape_slack_text("a & <b> &lt;") == "a &amp; &lt;b&gt; &amp;lt;"


def test_the_failure_message_has_a_header_counts_failed_daos_and_the_link() -> None:
    payload = build_slack_payload(alert())
    header = payload["blocks"][0]
    assert header["type"] == "header"
    assert header["text"]["text"] == "🚨 Weekly GVS Recalculation failed"
    text = whole(payload)
    assert "*DAOs processed:* 4/10" in text
    assert "*Failures:* 6 (60%)" in text
    assert "• *Uniswap*: Snapshot hub timed out" in text
    assert f"<{ADMIN_URL}|View in Admin Dashboard>" in text


def test_the_fallback_text_summarises_the_outcome() -> None:
    payload = build_slack_payload(alert())
    assert payload["text"] == ("🚨 Weekly GVS Recalculation failed: 4/10 DAOs processed, 6 failed")


def test_names_and_errors_are_escaped_and_never_raw() -> None:
    text = whole(build_slack_payload(alert()))
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    assert "&lt;/ul&gt;&lt;script&gt; &amp; &lt;!channel&gt;" in text
    assert "<img" not in text
    assert "<script>" not in text
    assert "<!channel>" not in text


def test_the_link_url_is_escaped_inside_the_slack_link() -> None:
    payload = build_slack_payload(alert(admin_url="https://x.example/jobs?id=1&v=<2>"))
    assert "<https://x.example/jobs?id=1&amp;v=&lt;2&gt;|View in Admin Dashboard>" in whole(payload)


def test_500_failures_stay_within_slacks_limits_and_say_how_many_were_left_out() -> None:
    payload = build_slack_payload(
        alert(daos_total=600, daos_failed=500, failures=many_failures(500))
    )
    blocks = payload["blocks"]
    assert len(blocks) <= 50
    assert len(blocks[0]["text"]["text"]) <= 150
    assert all(len(t) <= 3000 for t in texts(payload)[1:])
    assert "…and 480 more not shown" in whole(payload)


def test_the_block_budget_holds_even_without_the_readability_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(slack_message, "MAX_FAILURES_SHOWN", 500)
    payload = build_slack_payload(
        alert(daos_total=600, daos_failed=500, failures=many_failures(500))
    )
    shown = whole(payload).count("• *DAO")
    assert len(payload["blocks"]) == 50
    assert all(len(t) <= 3000 for t in texts(payload)[1:])
    assert f"…and {500 - shown} more not shown" in whole(payload)


def test_failures_beyond_the_100_an_event_lists_are_counted_as_not_shown() -> None:
    payload = build_slack_payload(alert(daos_failed=250, failures=many_failures(100)))
    assert "…and 230 more not shown" in whole(payload)


def test_a_long_error_is_cut_and_its_newlines_flattened() -> None:
    long = "line one\nline two " + "x" * 1900
    payload = build_slack_payload(alert(failures=(Failure(dao_id="d", dao_name="D", error=long),)))
    line = next(t for t in texts(payload) if "*D*" in t)
    assert "line one line two" in line
    assert line.endswith("…")
    assert len(line) < 400


def test_the_recovery_note_is_short_and_lists_no_failures() -> None:
    payload = build_slack_payload(alert("recovered", status="completed", recovered_from="failed"))
    assert payload["blocks"][0]["text"]["text"] == "✅ Weekly GVS Recalculation recovered"
    assert "The previous run failed; this one completed." in whole(payload)
    assert "Failed DAOs" not in whole(payload)
    assert len(payload["blocks"]) == 3


@pytest.mark.parametrize(
    ("setback", "says"),
    [
        ("abandoned", "The previous run was abandoned (it stopped reporting progress)"),
        ("missed", "The last scheduled run was missed (it never started)"),
    ],
)
def test_the_recovery_note_says_what_the_job_recovered_from(setback: str, says: str) -> None:
    payload = build_slack_payload(alert("recovered", status="completed", recovered_from=setback))
    assert f"{says}; this one completed." in whole(payload)
    assert "previous run failed" not in whole(payload)


def test_the_warning_message_lists_the_ranking_warnings() -> None:
    warning = "Only 75 DAOs were scored, 25% fewer than the 100 of the previous completed run."
    payload = build_slack_payload(alert("warning", warnings=(warning,)))
    assert payload["blocks"][0]["text"]["text"].startswith("⚠️ Weekly GVS Recalculation")
    assert f"• {warning}" in whole(payload)


def test_a_completed_run_with_many_failures_says_they_crossed_the_threshold() -> None:
    payload = build_slack_payload(alert("warning", status="completed", daos_failed=3))
    assert "More than 20% of the DAOs failed" in whole(payload)


def test_the_fatal_error_is_shown_escaped() -> None:
    payload = build_slack_payload(alert(fatal_error="pool <closed> & gone"))
    assert "*Fatal error:* pool &lt;closed&gt; &amp; gone" in whole(payload)


def test_the_abandoned_message_says_when_progress_stopped() -> None:
    text = whole(build_slack_payload(alert("abandoned")))
    assert "*Last event:* 2025-12-21 23:05:32 UTC" in text
    assert "*No event for:* 1h" in text


def test_the_missed_message_says_which_run_never_started() -> None:
    text = whole(build_slack_payload(alert("missed")))
    assert "*Scheduled for:* 2025-12-22 00:05:32 UTC" in text
    assert "*Not started after:* 30m" in text


@pytest.mark.parametrize("kind", get_args(NotificationKind))
def test_every_kind_builds_a_payload_ending_with_the_admin_link(kind: NotificationKind) -> None:
    payload = build_slack_payload(alert(kind))
    assert payload["blocks"][-1]["text"]["text"] == f"<{ADMIN_URL}|View in Admin Dashboard>"


@pytest.mark.parametrize("kind", ["failure", "abandoned", "missed"])
def test_the_moments_are_in_the_admin_time_zone_with_its_name(kind: NotificationKind) -> None:
    text = whole(build_slack_payload(alert(kind), ZoneInfo("America/New_York")))
    assert "2025-12-21 19:05:32 EST" in text  # 00:05:32 UTC, when it was detected
    assert "UTC" not in text
