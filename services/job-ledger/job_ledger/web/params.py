"""Query and path parameters, parsed strictly: anything malformed is a 400, never a 500."""

from __future__ import annotations

import re
from datetime import timedelta
from uuid import UUID

from contracts.events import JOB_NAME_PATTERN
from job_ledger.web.errors import ApiError
from job_ledger.web.rows import EPOCH, HistoryCursor

DEFAULT_LIMIT = 30
MAX_LIMIT = 100
_DIGITS = re.compile(r"[0-9]+")
_JOB_NAME = re.compile(JOB_NAME_PATTERN)
MAX_OFFSET = 10**12
"""Far beyond any job's events; a bigger offset answers the same empty page."""


def _whole_number(raw: str, ceiling: int) -> int | None:
    """Return ``raw``'s digits as a number no bigger than ``ceiling``, None if not digits.

    Any length of digits is a valid number (the OpenAPI document sets no maximum); it is
    capped before ``int()`` so a thousand-digit value costs nothing.
    """
    if not _DIGITS.fullmatch(raw):
        return None
    digits = raw.lstrip("0") or "0"
    if len(digits) > len(str(ceiling)):
        return ceiling
    return min(int(digits), ceiling)


def parse_limit(raw: str | None, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    """Return ``raw`` as a positive whole number capped at ``maximum``, ``default`` if absent.

    Raises ``ApiError(400)`` for anything else (``abc``, ``-1``, ``0``, ``1.5``, ``+3``).
    """
    if raw is None:
        return default
    value = _whole_number(raw, maximum)
    if value is None or value < 1:
        raise ApiError(400, f"limit must be a whole number from 1 (capped at {maximum})")
    return value


def parse_offset(raw: str | None) -> int:
    """Return ``raw`` as a whole number ≥ 0 (0 if absent); raises ``ApiError(400)``."""
    if raw is None:
        return 0
    value = _whole_number(raw, MAX_OFFSET)
    if value is None:
        raise ApiError(400, "offset must be a whole number from 0")
    return value


def parse_uuid(raw: str, name: str = "id") -> UUID:
    """Return ``raw`` as a UUID; raises ``ApiError(400)`` naming the parameter."""
    try:
        return UUID(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be a UUID") from None


CURSOR_PATTERN = (
    "([0-9]{1,16}),([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
)
"""A history cursor: startedAt in microseconds since 1970-01-01T00:00:00Z, a comma, the job's
id. Every text of this shape is a valid cursor (16 digits reach the year 2286), so the
OpenAPI document's pattern and this parser accept exactly the same texts."""
_CURSOR = re.compile(CURSOR_PATTERN)
BEFORE_FORMAT = "'<startedAt in µs since 1970>,<id>' as meta.nextBefore gives it"


def parse_before(raw: str | None) -> HistoryCursor | None:
    """Return the cursor ``raw`` (:data:`CURSOR_PATTERN`), None if absent; raises
    ``ApiError(400)`` for anything else."""
    if raw is None:
        return None
    found = _CURSOR.fullmatch(raw)
    if found is None:
        raise ApiError(400, f"before must be a cursor {BEFORE_FORMAT}")
    micros, job_id = found.groups()
    return HistoryCursor(EPOCH + timedelta(microseconds=int(micros)), UUID(job_id))


def parse_job_name(raw: str | None) -> str | None:
    """Return a job name as the contract allows it, None if absent; raises ``ApiError(400)``."""
    if raw is None:
        return None
    if not _JOB_NAME.fullmatch(raw):
        raise ApiError(400, "jobName must be lowercase letters, digits, '-' or '_' (at most 100)")
    return raw
