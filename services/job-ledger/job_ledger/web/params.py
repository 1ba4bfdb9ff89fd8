"""Query and path parameters, parsed strictly: anything malformed is a 400, never a 500."""

from __future__ import annotations

import re
from uuid import UUID

from contracts.events import JOB_NAME_PATTERN
from job_ledger.web.errors import ApiError

DEFAULT_LIMIT = 30
MAX_LIMIT = 100
_DIGITS = re.compile(r"[0-9]{1,12}")
_JOB_NAME = re.compile(JOB_NAME_PATTERN)


def parse_limit(raw: str | None, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    """Return ``raw`` as a positive whole number capped at ``maximum``, ``default`` if absent.

    Raises ``ApiError(400)`` for anything else (``abc``, ``-1``, ``0``, ``1.5``, ``+3``).
    """
    if raw is None:
        return default
    if not _DIGITS.fullmatch(raw) or int(raw) < 1:
        raise ApiError(400, f"limit must be a whole number from 1 (capped at {maximum})")
    return min(int(raw), maximum)


def parse_offset(raw: str | None) -> int:
    """Return ``raw`` as a whole number ≥ 0 (0 if absent); raises ``ApiError(400)``."""
    if raw is None:
        return 0
    if not _DIGITS.fullmatch(raw):
        raise ApiError(400, "offset must be a whole number from 0")
    return int(raw)


def parse_uuid(raw: str, name: str = "id") -> UUID:
    """Return ``raw`` as a UUID; raises ``ApiError(400)`` naming the parameter."""
    try:
        return UUID(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be a UUID") from None


def parse_job_name(raw: str | None) -> str | None:
    """Return a job name as the contract allows it, None if absent; raises ``ApiError(400)``."""
    if raw is None:
        return None
    if not _JOB_NAME.fullmatch(raw):
        raise ApiError(400, "jobName must be lowercase letters, digits, '-' or '_' (at most 100)")
    return raw
