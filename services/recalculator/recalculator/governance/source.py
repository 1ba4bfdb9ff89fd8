"""What the recalculator needs from a governance source, and the two ways a fetch can fail.

A source answers ``fetch(dao, since)`` with the DAO's proposals created at or after ``since``.
It raises ``TransientSourceError`` when trying again later may work (timeouts, 5xx, 429, a
dropped connection) and ``PermanentSourceError`` when it will not (an unknown space, a 4xx, an
answer of the wrong shape, a DAO missing from a data file). The caller retries only the first.
"""

from __future__ import annotations

from contextvars import ContextVar
from datetime import datetime
from typing import Protocol

from recalculator.daos import DaoRef
from recalculator.scoring import GovernanceData

fetch_deadline: ContextVar[float | None] = ContextVar("fetch_deadline", default=None)
"""The event-loop time by which the current ``fetch`` must be done, set by the caller that
bounds it. A source asked to wait past it (a hub's ``Retry-After``) fails at once instead."""


class SourceError(Exception):
    """A governance source could not give a DAO's data; the message says why, for an operator."""


class TransientSourceError(SourceError):
    """The source failed in a way that may pass: worth retrying with backoff."""


class PermanentSourceError(SourceError):
    """The source failed in a way that retrying will not fix: record it and move on."""


class GovernanceSource(Protocol):
    async def fetch(self, dao: DaoRef, since: datetime) -> GovernanceData:
        """Returns ``dao``'s proposals created at or after ``since`` (timezone-aware).

        Raises ``TransientSourceError`` or ``PermanentSourceError``; never another exception
        for a failure of the source itself. Idempotent: it only reads.
        """
        ...
