"""The notifier's settings: defaults, recipients, blanks meaning unset, named errors."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from chassis.settings import SettingsError, load_settings
from notifier.config import Settings

_VARS = (
    "RESEND_API_KEY",
    "RESEND_API_URL",
    "SLACK_WEBHOOK_URL",
    "CACHE_REVALIDATE_URL",
    "ALERT_EMAIL_TO",
    "EMAIL_FROM",
    "EMAIL_TRANSPORT",
    "EMAIL_OUTBOX_DIR",
    "NOTIFIER_SCHEMA",
    "NOTIFY_MAX_ATTEMPTS",
    "NOTIFY_TIMEOUT",
    "NOTIFY_BACKOFF_MAX",
    "HEALTH_PORT",
    "ADMIN_BASE_URL",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _VARS:
        monkeypatch.delenv(name, raising=False)


def test_the_defaults_are_the_documented_ones() -> None:
    settings = load_settings(Settings)
    assert settings.notifier_schema == "notifier"
    assert settings.resend_api_key is None and settings.slack_webhook_url is None
    assert settings.resend_api_url == "https://api.resend.com"
    assert settings.email_from == "ChainSights <hello@chainsights.one>"
    assert settings.alert_recipients == ["hello@chainsights.one"]
    assert settings.email_transport == "resend"
    assert settings.email_outbox_dir == Path("var/emails")
    assert settings.admin_base_url == "http://localhost:8080"
    assert settings.revalidation_configured is False
    assert settings.notify_max_attempts == 5
    assert settings.notify_timeout == timedelta(seconds=10)
    assert settings.notify_backoff_max == timedelta(seconds=30)
    assert settings.health_port == 8081


def test_several_recipients_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERT_EMAIL_TO", " ops@example.test, ,oncall@example.test ")
    assert load_settings(Settings).alert_recipients == ["ops@example.test", "oncall@example.test"]


def test_blank_secrets_and_urls_mean_not_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESEND_API_KEY", "")
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "  ")
    monkeypatch.setenv("CACHE_REVALIDATE_URL", "")
    settings = load_settings(Settings)
    assert settings.resend_api_key is None and settings.slack_webhook_url is None
    assert settings.revalidation_configured is False


def test_secrets_are_not_shown_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESEND_API_KEY", "re_live_hunter2")
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/hunter3")
    settings = load_settings(Settings)
    assert "hunter2" not in repr(settings) and "hunter3" not in repr(settings)
    assert settings.resend_api_key is not None
    assert settings.resend_api_key.get_secret_value() == "re_live_hunter2"


def test_durations_and_revalidation_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_TIMEOUT", "500ms")
    monkeypatch.setenv("NOTIFY_BACKOFF_MAX", "2m")
    monkeypatch.setenv("CACHE_REVALIDATE_URL", "https://chainsights.one/api/revalidate")
    settings = load_settings(Settings)
    assert settings.notify_timeout == timedelta(milliseconds=500)
    assert settings.notify_backoff_max == timedelta(minutes=2)
    assert settings.revalidation_configured is True


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("EMAIL_TRANSPORT", "pigeon"),
        ("NOTIFY_MAX_ATTEMPTS", "0"),
        ("NOTIFY_TIMEOUT", "0s"),
        ("NOTIFY_BACKOFF_MAX", "soon"),
        ("ALERT_EMAIL_TO", " , "),
    ],
)
def test_an_invalid_value_stops_the_start_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        load_settings(Settings)
