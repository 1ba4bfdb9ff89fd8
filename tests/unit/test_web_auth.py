"""Password and token checks, session and flash cookies, CSRF tokens, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import SecretStr

from job_ledger.credentials import ApiToken, Credentials
from job_ledger.web.auth import Session, SessionKeys

T0 = datetime(2025, 12, 22, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def password_matches(given: str | bytes, password: str) -> bool:
    return Credentials(password).password_matches(given)


def test_the_password_matches_only_exactly_in_utf8_or_latin1_bytes() -> None:
    assert password_matches("pässword", "pässword")
    assert password_matches("pässword".encode(), "pässword")
    assert password_matches("pässword".encode("latin-1"), "pässword")
    assert not password_matches("pässwore", "pässword")
    assert not password_matches("pässwor", "pässword")
    assert not password_matches("", "pässword")
    assert password_matches("🔑key", "🔑key") and not password_matches("🔑kez", "🔑key")


def test_a_session_cookie_round_trips_and_expires_after_12_hours() -> None:
    clock = Clock()
    keys = SessionKeys("secret", clock)
    session, cookie = keys.new_session()
    assert keys.session(cookie) == session
    clock.now = T0 + timedelta(hours=11, minutes=59)
    assert keys.session(cookie) == session
    clock.now = T0 + timedelta(hours=12, seconds=2)
    assert keys.session(cookie) is None


def test_a_forged_or_foreign_cookie_is_no_session() -> None:
    clock = Clock()
    keys = SessionKeys("secret", clock)
    _, cookie = keys.new_session()
    other = SessionKeys("another secret", clock)
    assert other.session(cookie) is None
    assert keys.session(cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB")) is None
    assert keys.session("garbage") is None
    assert keys.session(None) is None
    # A flash cookie is signed with another salt: it never passes as a session.
    assert keys.session(keys.flash("hello", "ok")) is None


def test_csrf_tokens_belong_to_their_session() -> None:
    keys = SessionKeys("secret", Clock())
    a, b = Session("a"), Session("b")
    assert keys.csrf_valid(a, keys.csrf_token(a))
    assert not keys.csrf_valid(a, keys.csrf_token(b))
    assert not keys.csrf_valid(a, None)
    assert not keys.csrf_valid(a, "")


def test_flash_messages_round_trip_and_refuse_forgeries() -> None:
    keys = SessionKeys("secret", Clock())
    assert keys.read_flash(keys.flash("Retry requested: x", "ok")) == ("Retry requested: x", "ok")
    assert keys.read_flash("forged") is None


def test_a_bearer_token_names_its_holder_and_the_password_opens_the_login_alone() -> None:
    credentials = Credentials(
        "admin-password-0123", (ApiToken("ci", SecretStr("ci-token-0123456789")),)
    )
    assert credentials.bearer_holder("admin-password-0123") == "admin"
    assert credentials.bearer_holder(b"ci-token-0123456789") == "ci"
    assert credentials.bearer_holder("ci-token-012345678") is None
    assert not credentials.password_matches("ci-token-0123456789")
