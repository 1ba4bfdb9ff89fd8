"""How the recalculator paces its requests to the Snapshot hub, and reads the hub's Retry-After.

The hub allows 100 requests a minute without an API key and about 2 million a month with one
(``x-api-key``). ``SNAPSHOT_RATE_LIMIT`` says how many requests a minute the whole process may
send; unset, it is ``KEYLESS_RATE_LIMIT`` without a key and ``KEYED_RATE_LIMIT`` with one.

``SlidingWindowLimiter`` enforces it: it remembers when each of the last ``rate`` requests
left, and lets a new one go only when fewer than ``rate`` left within the last ``period_s``.
So no window of ``period_s`` ever holds more than ``rate`` requests, including the first
minute. (A leaky bucket such as aiolimiter's starts empty and lets ``rate`` through at once
and then its steady drip, close to twice the rate in the first window, which is what gets a
client a 429.)
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, PositiveInt

KEYLESS_RATE_LIMIT = 100
"""Requests a minute without an API key: the hub's own keyless limit."""

KEYED_RATE_LIMIT = 1000
"""Requests a minute with an API key. The keyed limit is a monthly quota (2 million), not a
rate; 1,000 a minute fetches a registry of a few hundred DAOs in about a minute while a weekly
run stays at a few thousand requests a month."""


def _blank_is_unset(value: Any) -> Any:
    # `SNAPSHOT_RATE_LIMIT=` in an .env file means "use the default", not "zero".
    return None if isinstance(value, str) and not value.strip() else value


RequestsPerMinute = Annotated[PositiveInt | None, BeforeValidator(_blank_is_unset)]
"""A setting's type: a whole number of requests a minute above zero, or unset."""


def hub_rate_limit(configured: int | None, *, with_key: bool) -> int:
    """Returns the requests a minute to send: ``configured`` if set, else the default for
    keyed or keyless access."""
    if configured is not None:
        return configured
    return KEYED_RATE_LIMIT if with_key else KEYLESS_RATE_LIMIT


class SlidingWindowLimiter:
    """Lets at most ``rate`` acquisitions through in any ``period_s`` seconds, in order of
    arrival, across every task of the event loop that shares it."""

    def __init__(self, rate: int, *, period_s: float = 60.0) -> None:
        if rate < 1 or not period_s > 0:
            raise ValueError("rate and period_s must be positive")
        self.rate = rate
        self.period_s = period_s
        self._sent: deque[float] = deque(maxlen=rate)
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Returns once a request may be sent, and counts it as sent. Cancellable: a waiter
        cancelled before it returns counts for nothing."""
        # The lock queues waiters first come, first served; the one holding it sleeps until
        # the oldest remembered request leaves the window.
        async with self._lock:
            loop = asyncio.get_running_loop()
            while len(self._sent) == self.rate:
                wait = self._sent[0] + self.period_s - loop.time()
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            self._sent.append(loop.time())


def retry_after_s(value: str | None, *, now: datetime | None = None) -> float | None:
    """Returns how many seconds a ``Retry-After`` header asks to wait: a number of seconds or
    an HTTP-date (a date in the past is 0). ``None`` when absent or not understood."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
