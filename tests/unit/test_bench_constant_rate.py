"""The constant-rate load only ever loads our own server on loopback."""

from __future__ import annotations

import pytest

from bench.constant_rate import check_loopback


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/api", "http://localhost:1/", "http://[::1]:80/x"]
)
def test_loopback_urls_are_loaded(url: str) -> None:
    check_loopback(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/",
        "http://10.0.0.1:8080/",
        "ftp://127.0.0.1/",
        "http://127.0.0.1.nip.io/",
    ],
)
def test_any_other_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        check_loopback(url)
