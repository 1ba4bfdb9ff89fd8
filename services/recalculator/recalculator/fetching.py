"""One DAO's governance data, with a timeout per attempt and retries of transient errors.

Each attempt is bounded by ``DAO_TIMEOUT`` (a source that hangs counts as a transient error);
``TransientSourceError`` is retried ``DAO_RETRIES`` times (default 2) with exponential backoff
and jitter; ``PermanentSourceError`` is not retried. The attempt's deadline is handed to the
source (``fetch_deadline``): a wait the hub asks for (``Retry-After``) is spent inside the
attempt's budget, or refused at once when it would not fit. Whatever failed, the caller gets
one ``DaoFetchFailed`` with the last error and the number of attempts made.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from recalculator.daos import DaoRef
from recalculator.governance import (
    GovernanceSource,
    PermanentSourceError,
    SourceError,
    TransientSourceError,
    fetch_deadline,
)
from recalculator.scoring import GovernanceData


class DaoFetchFailed(Exception):
    """A DAO's data could not be had: ``error`` says why, after ``attempts`` attempts."""

    def __init__(self, error: str, attempts: int) -> None:
        super().__init__(error)
        self.error = error
        self.attempts = attempts


@dataclass(frozen=True)
class RetryPolicy:
    """``timeout_s`` per attempt, ``retries`` after the first, backoff starting at ``backoff_s``."""

    timeout_s: float = 60.0
    retries: int = 2
    backoff_s: float = 1.0


@dataclass(frozen=True)
class Fetched:
    data: GovernanceData
    attempts: int


async def fetch_with_retries(
    source: GovernanceSource, dao: DaoRef, since: datetime, policy: RetryPolicy
) -> Fetched:
    """Returns ``dao``'s governance data and how many attempts it took.

    Raises ``DaoFetchFailed`` when every attempt failed or one failed permanently. Any other
    exception (a bug in a source) propagates: the run treats it as fatal. Read-only.
    """
    attempts = 0
    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.retries + 1),
        # Exponential from backoff_s, plus up to backoff_s of jitter so that DAOs failing
        # together (a hub outage) do not retry in lockstep.
        wait=wait_exponential(multiplier=policy.backoff_s, max=max(policy.backoff_s, 30))
        + wait_random(0, policy.backoff_s),
        retry=retry_if_exception_type(TransientSourceError),
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                attempts = attempt.retry_state.attempt_number
                data = await _attempt(source, dao, since, policy.timeout_s)
    except (TransientSourceError, PermanentSourceError) as exc:
        raise DaoFetchFailed(str(exc), attempts) from exc
    except SourceError as exc:
        raise DaoFetchFailed(str(exc), attempts) from exc
    return Fetched(data=data, attempts=attempts)


async def _attempt(
    source: GovernanceSource, dao: DaoRef, since: datetime, timeout_s: float
) -> GovernanceData:
    deadline = asyncio.get_running_loop().time() + timeout_s
    token = fetch_deadline.set(deadline)
    try:
        async with asyncio.timeout_at(deadline):
            return await source.fetch(dao, since)
    except TimeoutError:
        # The source's own timeouts are per request; this one bounds the whole attempt
        # (every page), so one slow DAO cannot hold a concurrency slot for ever.
        raise TransientSourceError(
            f"governance data for DAO {dao.id} not fetched within {timeout_s:g}s"
        ) from None
    finally:
        fetch_deadline.reset(token)
