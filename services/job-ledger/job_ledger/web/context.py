"""What every route needs from the composition root, handed in explicitly, never global."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import asyncpg

from contracts import RunRequested

RequestRun = Callable[[RunRequested], Awaitable[None]]
"""Publishes a RunRequested and returns once the broker confirmed it; raises if it could not."""


@dataclass(frozen=True, slots=True)
class WebContext:
    """The ledger's pool (search_path already on the ledger schema), the publisher, a clock,
    and the job the ledger was configured for (``JOB_NAME``: what its buttons ask to run)."""

    pool: asyncpg.Pool
    request_run: RequestRun
    clock: Callable[[], datetime]
    job_name: str
    job_schedule: str
    """``JOB_SCHEDULE``: the cron expression (UTC) the history page shows the next slot of."""
    zone: ZoneInfo
    """``ADMIN_TIMEZONE``: the zone the pages show moments in (the API stays UTC)."""
