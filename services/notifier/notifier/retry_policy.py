"""How hard the dispatcher tries: attempts, request timeout, backoff and the lease they imply."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

# A provider asking for more than this is treated as asking for this: a record must not sit
# leased for hours; the attempt bound still ends it.
MAX_RETRY_AFTER_S = 300.0
# Slack for the database writes around one attempt, on top of the request timeout.
LEASE_MARGIN = timedelta(seconds=5)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try: attempts, per-request timeout and the backoff between attempts."""

    max_attempts: int
    timeout_s: float
    backoff_max_s: float
    backoff_base_s: float = 1.0

    def delay_s(self, attempt: int, retry_after_s: float | None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        The provider's ``Retry-After`` when given (capped at five minutes), else
        ``base * 2^(attempt-1)`` capped at ``backoff_max_s``, with jitter (50–100%).
        """
        if retry_after_s is not None:
            return min(retry_after_s, MAX_RETRY_AFTER_S)
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2.0 ** (attempt - 1))
        return ceiling * random.uniform(0.5, 1.0)  # noqa: S311 jitter, not a secret

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.timeout_s) + LEASE_MARGIN
