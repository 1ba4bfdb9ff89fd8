"""Moments for people: the ``ADMIN_TIMEZONE`` setting and the one way a moment is written.

Machines read UTC (the API, the events); people read the admin pages and the alerts in the zone
the operator chose, with the zone's abbreviation shown so that nobody has to guess:
``2026-12-01 17:05:32 CET``. Zone names are IANA names (``Europe/Paris``), looked up in the
system's zone database or, where the system has none (slim container images), in the
``tzdata`` package.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

UTC_ZONE = ZoneInfo("UTC")


def zone_named(value: Any) -> ZoneInfo:
    """Return the IANA zone ``value`` names (blank: UTC); a ZoneInfo is returned as it is.

    Raises ``ValueError`` saying what is expected, for a name no zone database knows.
    """
    if isinstance(value, ZoneInfo):
        return value
    name = str(value).strip()
    if not name:
        return UTC_ZONE
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        # ZoneInfoNotFoundError is a KeyError: pydantic reports only ValueError as invalid.
        raise ValueError(
            f"{name!r} is not an IANA time zone name, e.g. UTC, Europe/Paris, America/New_York"
        ) from None


TimeZone = Annotated[
    ZoneInfo,
    BeforeValidator(zone_named),
    PlainSerializer(str),
    WithJsonSchema({"type": "string"}),
]
"""A settings field holding an IANA time zone, read from its name."""


def local_moment(moment: datetime, zone: ZoneInfo) -> str:
    """Return ``moment`` in ``zone`` with the zone's abbreviation: ``2026-12-01 17:05:32 CET``.

    Raises ``ValueError`` for a naive datetime, whose zone would be a guess.
    """
    if moment.tzinfo is None:
        raise ValueError("a naive datetime has no known time zone")
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")
