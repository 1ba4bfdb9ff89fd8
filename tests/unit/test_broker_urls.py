"""``AMQP_URL`` as a list: what it accepts, what it refuses (without repeating a password), and
how a list is written in a log line."""

from __future__ import annotations

import pytest

from chassis.broker_urls import parse_amqp_urls, redact_url
from chassis.settings import BaseServiceSettings, SettingsError, load_settings


def test_one_url_is_a_list_of_one() -> None:
    assert parse_amqp_urls("amqp://guest:guest@127.0.0.1:5672/") == (
        "amqp://guest:guest@127.0.0.1:5672/",
    )


def test_several_urls_are_taken_in_order_with_blanks_around_them_removed() -> None:
    text = "amqp://u:p@rabbit-1:5672/, amqp://u:p@rabbit-2/ ,amqps://u:p@rabbit-3:5671/vhost"
    assert parse_amqp_urls(text) == (
        "amqp://u:p@rabbit-1:5672/",
        "amqp://u:p@rabbit-2/",
        "amqps://u:p@rabbit-3:5671/vhost",
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "no broker URL"),
        ("   ", "no broker URL"),
        ("amqp://u:s3cret@a/,", "address 2 of 2 is empty"),
        ("amqp://u:s3cret@a/,,amqp://u:s3cret@b/", "address 2 of 3 is empty"),
        ("amqp://a,://bad", "address 2 of 2 is not an amqp:// or amqps:// URL"),
        ("http://u:s3cret@a/", "address 1 of 1 is not an amqp:// or amqps:// URL"),
        ("amqp:///", "address 1 of 1 has no host"),
        ("amqp://u:s3cret@a:notaport/", "address 1 of 1 is not a valid URL"),
        ("amqp://u:s3cret@a:70000/", "address 1 of 1 is not a valid URL"),
    ],
)
def test_a_bad_list_is_refused_naming_the_entry_never_its_text(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says) as info:
        parse_amqp_urls(text)
    assert "s3cret" not in str(info.value)


def test_a_bad_list_in_the_environment_is_a_settings_error_naming_amqp_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AMQP_URL", "amqp://guest:s3cret@a/,ftp://guest:s3cret@b/")
    with pytest.raises(SettingsError, match="AMQP_URL: .*address 2 of 2") as info:
        load_settings(BaseServiceSettings)
    assert "s3cret" not in str(info.value)


def test_a_list_in_the_environment_is_kept_whole_and_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = "amqp://guest:s3cret@rabbit-1/,amqp://guest:s3cret@rabbit-2/"
    monkeypatch.setenv("AMQP_URL", text)
    settings = load_settings(BaseServiceSettings)
    assert settings.amqp_url.get_secret_value() == text
    assert "s3cret" not in repr(settings)


def test_every_password_of_a_list_is_redacted() -> None:
    text = "amqp://guest:s3cret@rabbit-1/,amqp://guest:0ther@rabbit-2:5673/,amqp://rabbit-3/"
    assert redact_url(text) == (
        "amqp://guest:***@rabbit-1/,amqp://guest:***@rabbit-2:5673/,amqp://rabbit-3/"
    )
