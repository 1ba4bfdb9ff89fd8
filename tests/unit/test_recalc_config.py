"""The recalculator's settings: a revalidation URL it could never post to stops the start."""

from __future__ import annotations

import pytest

from chassis.settings import SettingsError, load_settings
from recalculator.config import Settings


@pytest.mark.parametrize(
    "url",
    ["localhost:3000/api/revalidate", "ftp://example.org/x", "http://", "http://[::1/x"]
    + ["https://example.org:99999/api/revalidate?token=s3cret"],
)
def test_a_revalidation_url_that_is_no_http_url_stops_the_start_naming_the_variable(
    url: str,
) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(Settings, cache_revalidate_url=url)
    message = str(raised.value)
    assert "CACHE_REVALIDATE_URL: Value error, expected an http:// or https:// URL" in message
    assert "s3cret" not in message


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://chainsights.one/api/revalidate", "https://chainsights.one/api/revalidate"),
        ("http://127.0.0.1:3000/api/revalidate", "http://127.0.0.1:3000/api/revalidate"),
        ("", None),
    ],
)
def test_an_http_url_or_none_is_taken(url: str, kept: str | None) -> None:
    assert load_settings(Settings, cache_revalidate_url=url).cache_revalidate_url == kept
