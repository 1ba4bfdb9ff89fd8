"""The emails: subject, HTML and text parts, their colours, their content and their escaping."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.resources import files
from typing import Any, get_args
from zoneinfo import ZoneInfo

import pytest

from chassis.local_time import UTC_ZONE, local_moment
from contracts.events import NotificationKind
from notifier.alert import Alert
from notifier.rendering import RenderedEmail, human_duration, render_email
from tests.support.alerts import ADMIN_URL, EVIL_NAME, six_of_ten_failed, weekly_run_alert

GREEN = "#15803d"
RED = "#b91c1c"
YELLOW = "#fefce8"
EVIL_ERROR = "</ul><script>"
ALERT_PREFIX = "🚨 ChainSights Alert: "


def alert(kind: NotificationKind = "success", **changes: Any) -> Alert:
    """A failure lists two of its six failed DAOs, one in HTML; a missed run was due at 00:00."""
    if kind == "failure":
        changes = six_of_ten_failed(EVIL_ERROR) | changes
    if kind == "missed":
        changes = {"scheduled_for": datetime(2025, 12, 22, tzinfo=UTC)} | changes
    return weekly_run_alert(kind, **changes)


@pytest.mark.parametrize("kind", get_args(NotificationKind))
def test_every_kind_renders_all_three_parts_with_the_admin_link(kind: NotificationKind) -> None:
    email = render_email(alert(kind))
    assert email.subject and "\n" not in email.subject
    assert f'href="{ADMIN_URL}"' in email.html
    assert ADMIN_URL in email.text


@pytest.mark.parametrize("kind", ["failure", "abandoned", "missed"])
def test_red_emails_carry_the_alert_prefix_and_red_styling(kind: NotificationKind) -> None:
    email = render_email(alert(kind))
    assert email.subject.startswith(ALERT_PREFIX)
    assert RED in email.html
    assert GREEN not in email.html


@pytest.mark.parametrize("kind", ["success", "recovered", "warning"])
def test_green_emails_have_no_alert_prefix_and_green_styling(kind: NotificationKind) -> None:
    email = render_email(alert(kind))
    assert not email.subject.startswith(ALERT_PREFIX)
    assert GREEN in email.html
    assert RED not in email.html


def test_the_success_email_gives_the_summary_counts_duration_and_timestamp() -> None:
    email = render_email(alert("success"))
    assert email.subject == "✅ Weekly GVS Recalculation completed: 10/10 DAOs in 5m 32s"
    assert "10 of 10 DAOs were scored in 5m 32s." in email.text
    assert "DAOs Processed: 10/10" in email.text
    assert "Timestamp: 2025-12-22 00:05:32 UTC" in email.text
    assert "2025-12-22 00:05:32 UTC" in email.html
    assert YELLOW not in email.html


def test_the_failure_email_follows_the_storys_template() -> None:
    email = render_email(alert("failure"))
    assert email.subject == f"{ALERT_PREFIX}Weekly GVS Recalculation failed (6 of 10 DAOs failed)"
    assert "🚨 Weekly GVS Recalculation Failed</h1>" in email.html
    for line in (
        "Status: Failed",
        "Timestamp: 2025-12-22 00:05:32 UTC",
        "Duration: 5m 32s",
        "DAOs Processed: 4/10",
        "Failures: 6",
        "- Uniswap: Snapshot hub timed out",
    ):
        assert line in email.text
    assert "Failed DAOs:" in email.html
    assert "<strong>Uniswap</strong>: Snapshot hub timed out" in email.html
    assert ">View in Admin Dashboard</a>" in email.html


def test_the_failure_email_says_how_many_failed_daos_it_does_not_list() -> None:
    email = render_email(alert("failure", daos_failed=250))
    assert "…and 248 more not listed here" in email.html
    assert "…and 248 more not listed here" in email.text


def test_the_failure_email_shows_the_fatal_error() -> None:
    email = render_email(
        alert("failure", fatal_error="database unreachable", daos_failed=0, failures=())
    )
    assert "failed with a fatal error" in email.subject
    assert "database unreachable" in email.html
    assert "Fatal error: database unreachable" in email.text


def test_dao_names_and_errors_are_escaped_in_html_and_plain_in_text() -> None:
    email = render_email(alert("failure"))
    assert "&lt;img src=x onerror=alert(1)&gt;" in email.html
    assert "&lt;/ul&gt;&lt;script&gt;" in email.html
    assert "<img" not in email.html
    assert "<script>" not in email.html
    assert f"- {EVIL_NAME}: {EVIL_ERROR}" in email.text


def test_a_url_with_an_ampersand_is_escaped_in_the_link() -> None:
    email = render_email(alert("success", admin_url="https://x.example/jobs?id=1&v=2"))
    assert 'href="https://x.example/jobs?id=1&amp;v=2"' in email.html


def test_the_warning_email_is_green_with_a_yellow_box_of_sentences() -> None:
    warning = "The rankings cache was not revalidated: the site may still show the previous scores."
    email = render_email(alert("warning", warnings=(warning,), recovered_from="failed"))
    assert YELLOW in email.html
    assert warning in email.html
    assert f"- {warning}" in email.text
    assert "The job has recovered" in email.text


def test_the_recovered_email_says_the_job_recovered() -> None:
    email: RenderedEmail = render_email(alert("recovered", recovered_from="failed"))
    assert email.subject.startswith("✅ Weekly GVS Recalculation recovered")
    assert "the previous run failed, and this one completed" in email.text


@pytest.mark.parametrize(
    ("setback", "says"),
    [
        ("abandoned", "the previous run was abandoned (it stopped reporting progress)"),
        ("missed", "the last scheduled run was missed (it never started)"),
    ],
)
def test_the_recovered_email_says_what_the_job_recovered_from(setback: str, says: str) -> None:
    email = render_email(alert("recovered", recovered_from=setback))
    sentence = f"The job has recovered: {says}, and this one completed."
    assert sentence in email.text
    assert sentence in email.html
    assert "the previous run failed" not in email.text


def test_the_abandoned_email_says_what_was_expected_and_when() -> None:
    email = render_email(alert("abandoned"))
    assert email.subject == f"{ALERT_PREFIX}Weekly GVS Recalculation abandoned (no progress for 1h)"
    assert "last event arrived at 2025-12-21 23:05:32 UTC, and nothing followed for 1h" in (
        email.text
    )


def test_the_missed_email_says_which_run_never_started() -> None:
    email = render_email(alert("missed"))
    assert "2025-12-22 00:00:00 UTC" in email.subject
    assert "scheduled for 2025-12-22 00:00:00 UTC and had not started 30m later" in email.html


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "0ms"),
        (850, "850ms"),
        (1_000, "1s"),
        (42_900, "42s"),
        (332_000, "5m 32s"),
        (300_000, "5m"),
        (3_600_000, "1h"),
        (3_930_000, "1h 5m 30s"),
    ],
)
def test_durations_read_like_people_write_them(ms: int, text: str) -> None:
    assert human_duration(ms) == text


def test_a_negative_duration_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        human_duration(-1)


@pytest.mark.parametrize("kind", get_args(NotificationKind))
def test_every_moment_of_every_email_is_in_the_admin_time_zone_with_its_name(
    kind: NotificationKind,
) -> None:
    email = render_email(alert(kind), ZoneInfo("Europe/Paris"))
    whole = "\n".join((email.subject, email.html, email.text))
    assert "2025-12-22 01:05:32 CET" in email.text  # 00:05:32 UTC, the run's end
    assert "UTC" not in whole


def test_a_summer_moment_is_written_with_the_summer_zone() -> None:
    summer = alert("missed", scheduled_for=datetime(2026, 7, 1, 16, 5, tzinfo=UTC))
    email = render_email(summer, ZoneInfo("Europe/Paris"))
    assert "missed its 2026-07-01 18:05:00 CEST run" in email.subject


def test_a_naive_timestamp_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        local_moment(datetime(2025, 12, 22), UTC_ZONE)


def test_the_templates_ship_inside_the_notifier_package() -> None:
    email_templates = files("notifier") / "templates" / "email"
    assert (email_templates / "failure.html").is_file()
