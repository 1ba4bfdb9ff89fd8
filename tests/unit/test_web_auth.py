"""Password checks, session and flash cookies, CSRF tokens and the login throttle, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from job_ledger.web.auth import LoginThrottle, Session, SessionKeys, password_matches

T0 = datetime(2025, 12, 22, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


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


def test_the_throttle_delays_after_three_failures_doubling_up_to_a_cap() -> None:
    throttle = LoginThrottle(free_failures=3, base_delay_s=0.5, max_delay_s=4.0)
    delays = []
    for _ in range(8):
        delays.append(throttle.delay_for("1.2.3.4"))
        throttle.failed("1.2.3.4")
    assert delays == [0, 0, 0, 0.5, 1.0, 2.0, 4.0, 4.0]
    assert throttle.delay_for("5.6.7.8") == 0
    throttle.succeeded("1.2.3.4")
    assert throttle.delay_for("1.2.3.4") == 0
