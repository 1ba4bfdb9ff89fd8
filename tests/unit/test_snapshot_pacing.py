"""Pacing the Snapshot hub: the two settings, their defaults, and reading ``Retry-After``."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chassis.settings import SettingsError, load_settings
from recalculator.__main__ import main
from recalculator.config import Settings
from recalculator.governance.pacing import (
    KEYED_RATE_LIMIT,
    KEYLESS_RATE_LIMIT,
    hub_rate_limit,
    retry_after_s,
)

NOW = datetime(2025, 6, 2, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("value", ["0", "-5", "fast", "1.5", "100/min"])
def test_a_rate_limit_that_is_no_positive_whole_number_stops_the_start_naming_it(
    value: str,
) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(Settings, snapshot_rate_limit=value)
    assert "SNAPSHOT_RATE_LIMIT:" in str(raised.value)


def test_the_command_exits_2_naming_a_bad_rate_limit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SNAPSHOT_RATE_LIMIT", "0")
    assert main(["migrate"]) == 2
    assert "SNAPSHOT_RATE_LIMIT: Input should be greater than 0" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("key", "limit", "expected"),
    [
        (None, None, KEYLESS_RATE_LIMIT),
        ("", "", KEYLESS_RATE_LIMIT),
        ("sk-1", None, KEYED_RATE_LIMIT),
        ("sk-1", "250", 250),
        (None, "30", 30),
    ],
)
def test_the_rate_is_the_configured_one_or_the_hubs_limit_for_keyed_or_keyless_access(
    key: str | None, limit: str | None, expected: int
) -> None:
    settings = load_settings(Settings, snapshot_api_key=key, snapshot_rate_limit=limit)
    with_key = settings.snapshot_api_key is not None
    assert hub_rate_limit(settings.snapshot_rate_limit, with_key=with_key) == expected
    assert (KEYLESS_RATE_LIMIT, KEYED_RATE_LIMIT) == (100, 1000)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 3 ", 3.0),
        ("0", 0.0),
        ("Mon, 02 Jun 2025 12:00:30 GMT", 30.0),
        ("Mon, 02 Jun 2025 11:59:00 GMT", 0.0),
        (None, None),
        ("soon", None),
        ("-1", None),
        ("nan", None),
        ("", None),
    ],
)
def test_retry_after_is_read_as_seconds_or_an_http_date(
    header: str | None, seconds: float | None
) -> None:
    assert retry_after_s(header, now=NOW) == seconds
