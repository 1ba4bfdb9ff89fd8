"""Retrying a database step through an outage (a Postgres restart, a failover, a full pool).

A run must not turn a database that is briefly away into a fatal error, nor lose its
JobFinished to one: each step that writes is retried, on a fresh connection, with capped
exponential backoff and jitter, while the error is one of ``TRANSIENT_DATABASE_ERRORS``. A
transaction cut during its COMMIT may have committed, so every step retried here is idempotent
(see ``JobStore``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from chassis.database import TRANSIENT_DATABASE_ERRORS
from recalculator import metrics

log = logging.getLogger(__name__)

T = TypeVar("T")

DATABASE_PATIENCE_S = 120.0
"""How long a DAO's step waits for the database before the run stops as failed (a run's
JobFinished waits as long as it takes)."""


class DatabaseOutage(RuntimeError):
    """The database stayed away longer than a step could wait; the message says for how long
    and the last error."""


async def retry_transient(
    step: Callable[[], Awaitable[T]],
    *,
    what: str,
    give_up_after_s: float | None,
    extra: Mapping[str, Any] | None = None,
    first_backoff_s: float = 0.2,
    max_backoff_s: float = 10.0,
) -> T:
    """Returns ``step()``'s result, calling it again after each transient database error.

    ``give_up_after_s`` None retries for as long as it takes (until cancelled); otherwise raises
    ``DatabaseOutage`` once that long has passed since the first failure. Any other error is
    raised at once. As idempotent as ``step``.
    """
    failed_since: float | None = None
    attempt = 0
    while True:
        try:
            result = await step()
        except TRANSIENT_DATABASE_ERRORS as exc:
            now = time.monotonic()
            failed_since = now if failed_since is None else failed_since
            attempt += 1
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            waited = now - failed_since
            if give_up_after_s is not None and waited >= give_up_after_s:
                raise DatabaseOutage(
                    f"database unavailable for {waited:.0f}s while trying to {what}: {error}"
                ) from exc
            metrics.DATABASE_RETRIES.inc()
            delay = min(max_backoff_s, first_backoff_s * 2 ** min(attempt - 1, 10))
            delay *= random.uniform(0.5, 1.0)
            log.warning(
                "cannot %s (attempt %d, retry in %.1fs): %s",
                what,
                attempt,
                delay,
                error,
                extra=dict(extra or {}),
            )
            await asyncio.sleep(delay)
            continue
        if attempt:
            log.info("could %s after %d retries", what, attempt, extra=dict(extra or {}))
        return result
