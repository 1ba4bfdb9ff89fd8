"""The ledger's access settings: password length, named API tokens, trusted proxies, URLs.

Each bad value stops the start naming the variable and never repeating the secret.
"""

from __future__ import annotations

import ipaddress

import pytest

from chassis.settings import SettingsError, load_settings
from job_ledger.config import Settings
from job_ledger.credentials import parse_api_tokens
from job_ledger.proxies import ClientOrigin, parse_trusted_proxies


def refusal(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings(Settings)
    return str(info.value)


def test_a_password_shorter_than_16_characters_is_refused_without_repeating_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = refusal(monkeypatch, ADMIN_PASSWORD="short-pw-15char")
    assert "ADMIN_PASSWORD" in text and "at least 16 characters" in text
    assert "short-pw-15char" not in text


def test_api_tokens_are_named_and_a_bad_list_names_the_entry_not_the_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tokens = parse_api_tokens("ci:ci-token-0123456789, grafana:graf-token-0123456789")
    assert [(t.name, t.secret.get_secret_value()) for t in tokens] == [
        ("ci", "ci-token-0123456789"),
        ("grafana", "graf-token-0123456789"),
    ]
    assert "0123456789" not in repr(tokens)
    for bad in ("ci:short-token", "ci-token-0123456789", "a:tok-0123456789abc,a:tok-0123456789abd"):
        text = refusal(monkeypatch, ADMIN_API_TOKENS=bad)
        assert "ADMIN_API_TOKENS" in text and "entry" in text
        assert "short-token" not in text and "0123456789" not in text


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ADMIN_BASE_URL", "localhost:8080/secret-path"),
        ("TRUSTED_PROXIES", "10.0.0.1,not-an-ip"),
        ("DATABASE_URL", "mysql://u:hunter2-db@db/x"),
        ("DATABASE_URL", "postgresql://u:hunter2-db@db:port/x"),
    ],
)
def test_a_bad_url_or_proxy_list_is_named_at_start_without_its_secret(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    text = refusal(monkeypatch, **{name: value})
    assert name in text
    assert "hunter2" not in text and "secret-path" not in text


def test_the_database_url_is_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db/x?password=hunter2-db")
    settings = load_settings(Settings)
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.model_dump())


def scope(peer: str, *headers: tuple[bytes, bytes], scheme: str = "http") -> dict[str, object]:
    return {"type": "http", "client": (peer, 5000), "headers": list(headers), "scheme": scheme}


def test_forwarded_for_is_believed_only_from_a_trusted_proxy() -> None:
    origin = ClientOrigin(parse_trusted_proxies("10.0.0.5, 172.18.0.0/16"))
    forwarded = (b"x-forwarded-for", b"6.6.6.6, 203.0.113.9, 172.18.0.3")
    assert origin.address(scope("10.0.0.5", forwarded)) == "203.0.113.9"
    assert origin.address(scope("198.51.100.1", forwarded)) == "198.51.100.1"
    assert origin.address(scope("10.0.0.5")) == "10.0.0.5"
    assert origin.address(scope("10.0.0.5", (b"x-forwarded-for", b"junk, 203.0.113.9"))) == (
        "203.0.113.9"
    )
    assert parse_trusted_proxies("::1") == (ipaddress.ip_network("::1"),)


def test_https_is_the_request_s_scheme_or_what_a_trusted_proxy_says() -> None:
    origin = ClientOrigin(parse_trusted_proxies("10.0.0.5"))
    proto = (b"x-forwarded-proto", b"https")
    assert origin.is_https(scope("198.51.100.1", scheme="https"))
    assert origin.is_https(scope("10.0.0.5", proto))
    assert not origin.is_https(scope("198.51.100.1", proto))
    assert not origin.is_https(scope("10.0.0.5"))
