"""Settings: durations, and a start that fails loudly naming the variable."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chassis.settings import (
    BaseServiceSettings,
    CronExpression,
    OptionalSecret,
    PositiveDuration,
    SettingsError,
    load_settings,
    parse_duration,
)
from job_ledger.config import Settings as LedgerSettings


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("1h", 3600),
        ("1h30m", 5400),
        ("500ms", 0.5),
        ("45", 45),
        ("2d", 172800),
    ],
)
def test_durations_are_written_like_30m(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "soon", "30 minutes", "1x", "-5m"])
def test_a_bad_duration_says_how_to_write_one(text: str) -> None:
    with pytest.raises(ValueError, match="write it like 90s, 30m, 1h"):
        parse_duration(text)


def test_an_invalid_variable_is_named_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTBOX_RETENTION", "forever")
    monkeypatch.setenv("LOG_LEVEL", "LOUD")
    with pytest.raises(SettingsError) as info:
        load_settings(BaseServiceSettings)
    assert "OUTBOX_RETENTION" in str(info.value)
    assert "LOG_LEVEL" in str(info.value)


def test_the_amqp_password_is_not_shown_in_the_settings_repr(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AMQP_URL", "amqp://guest:hunter2@rabbit:5672/")
    settings = load_settings(BaseServiceSettings)
    assert "hunter2" not in repr(settings)
    assert settings.amqp_url.get_secret_value().endswith("@rabbit:5672/")


def test_topology_names_come_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTS_EXCHANGE", "mine.events")
    monkeypatch.setenv("LEDGER_QUEUE", "mine.job-ledger.events")
    topology = load_settings(LedgerSettings).topology
    assert topology.exchange == "mine.events"
    assert topology.queue("mine.job-ledger.events").dead_letter_queue == "mine.job-ledger.dead"


class _Scheduled(BaseServiceSettings):
    job_schedule: CronExpression = "0 0 * * 1"
    stale_after: PositiveDuration = timedelta(minutes=30)
    webhook: OptionalSecret = None


def test_a_bad_cron_expression_stops_the_start_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOB_SCHEDULE", "every monday")
    with pytest.raises(SettingsError, match=r"JOB_SCHEDULE: .*is not a cron expression"):
        load_settings(_Scheduled)


def test_a_zero_duration_is_refused_where_it_must_be_positive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STALE_AFTER", "0s")
    with pytest.raises(SettingsError, match="STALE_AFTER: .*must be longer than zero"):
        load_settings(_Scheduled)


def test_a_blank_optional_secret_means_not_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK", "  ")
    assert load_settings(_Scheduled).webhook is None
