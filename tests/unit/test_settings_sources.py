"""Settings from ``X_FILE`` files (Docker secrets), and passwords given apart from their URLs."""

from __future__ import annotations

from pathlib import Path

import pytest
from yarl import URL

from chassis.broker_urls import redact_url
from chassis.database import redact_dsn
from chassis.settings import BaseServiceSettings, SettingsError, load_settings
from chassis.settings_sources import url_with_password

AWKWARD = "a/b@c:d%e,f #?x"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "DATABASE_PASSWORD", "AMQP_URL", "AMQP_PASSWORD", "LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name + "_FILE", raising=False)


def secret_file(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_a_setting_is_read_from_the_file_its_file_variable_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOG_LEVEL_FILE", secret_file(tmp_path, "level", "WARNING\n"))

    assert load_settings(BaseServiceSettings).log_level == "WARNING"


def test_an_empty_file_leaves_an_optional_secret_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_PASSWORD_FILE", secret_file(tmp_path, "empty", ""))

    assert load_settings(BaseServiceSettings).database_password is None


def test_both_a_variable_and_its_file_are_refused_without_the_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_PASSWORD", "s3cret-in-env")
    monkeypatch.setenv("DATABASE_PASSWORD_FILE", secret_file(tmp_path, "pw", "s3cret-in-file"))

    with pytest.raises(SettingsError) as caught:
        load_settings(BaseServiceSettings)

    assert "DATABASE_PASSWORD and DATABASE_PASSWORD_FILE are both set" in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_an_unreadable_file_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMQP_PASSWORD_FILE", "/nonexistent/secret")

    with pytest.raises(SettingsError, match="AMQP_PASSWORD_FILE: cannot read /nonexistent/secret"):
        load_settings(BaseServiceSettings)


def test_any_password_goes_into_the_urls_percent_encoded_and_comes_back_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://recalculator@postgres:5432/chainsights")
    monkeypatch.setenv("DATABASE_PASSWORD_FILE", secret_file(tmp_path, "db", AWKWARD + "\n"))
    monkeypatch.setenv("AMQP_URL", "amqp://recalculator@rabbit-1/,amqp://recalculator@rabbit-2/")
    monkeypatch.setenv("AMQP_PASSWORD", AWKWARD)

    settings = load_settings(BaseServiceSettings)

    dsn = settings.database_url.get_secret_value()
    assert URL(dsn).password == AWKWARD and URL(dsn).host == "postgres"
    assert URL(dsn).path == "/chainsights"
    urls = settings.amqp_url.get_secret_value().split(",")
    assert [(URL(u).host, URL(u).password) for u in urls] == [
        ("rabbit-1", AWKWARD),
        ("rabbit-2", AWKWARD),
    ]
    for shown in (
        redact_dsn(dsn),
        redact_url(settings.amqp_url.get_secret_value()),
        repr(settings),
    ):
        assert "a/b" not in shown and "a%2Fb" not in shown and "%25e" not in shown


def test_a_url_that_already_holds_a_password_refuses_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:inline-secret@postgres/db")
    monkeypatch.setenv("DATABASE_PASSWORD", "apart")

    with pytest.raises(SettingsError) as caught:
        load_settings(BaseServiceSettings)

    assert "DATABASE_URL:" in str(caught.value) and "already holds a password" in str(caught.value)
    assert "inline-secret" not in str(caught.value)


def test_a_url_without_a_user_cannot_take_a_password() -> None:
    with pytest.raises(ValueError, match="needs a user name"):
        url_with_password("amqp://rabbitmq:5672/", "pw")
