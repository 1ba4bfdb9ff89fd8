"""Retrying a step through a passing fault: what counts as transient, and the one retry loop.

:data:`TRANSIENT_DATABASE_ERRORS` (and :func:`is_transient_database_error`) is the one answer
to "is the database away or busy, rather than the statement wrong?": a lost or refused
connection, a timeout, a server shutting down or starting up, too many connections, and a
deadlock or serialization failure (the transaction lost a race; run again, it may pass).

:func:`retry_transient` calls a step again after each transient error, with capped exponential
backoff and jitter, logging each retry; with a give-up time it raises :class:`DatabaseOutage`
(or the :class:`GaveUp` subclass it is told to) naming what it tried, how long, and the last
error. A transaction cut during its COMMIT may have committed, so what is retried must be
idempotent.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import asyncpg
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    RetryError,
    retry_if_exception,
    stop_after_delay,
    stop_never,
)
from tenacity.stop import stop_base

log = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT_DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable
    TimeoutError,  # a connect, an acquire or a statement timed out
    asyncpg.PostgresConnectionError,  # the connection failed or was lost
    asyncpg.InterfaceError,  # e.g. the connection was closed, or released by its close
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, cannot connect now, cancelled
    asyncpg.exceptions.TransactionRollbackError,  # deadlock detected, serialization failure
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    # asyncpg's "cannot switch to state N; another operation is in progress": what a
    # connection that Postgres dropped mid-transaction raises (seen on a restart).
    asyncpg.exceptions.InternalClientError,
)
"""Errors that say the database is away or busy, not that a statement is wrong: worth running
the whole transaction again on a fresh connection."""


def is_transient_database_error(exc: BaseException) -> bool:
    """Whether ``exc`` is one of :data:`TRANSIENT_DATABASE_ERRORS` (worth a retry)."""
    if isinstance(exc, asyncpg.exceptions.ClientConfigurationError):
        return False  # a malformed DSN is an InterfaceError that no retry mends
    return isinstance(exc, TRANSIENT_DATABASE_ERRORS)


class GaveUp(RuntimeError):
    """A step kept failing transiently for longer than it could wait.

    The message names what was tried, for how long, and the last error (also ``__cause__``).
    """

    condition = "failing"

    def __init__(self, what: str, waited_s: float, last_error: BaseException) -> None:
        self.what = what
        self.waited_s = waited_s
        self.last_error = last_error
        super().__init__(
            f"{self.condition} for {waited_s:.0f}s while trying to {what}: {describe(last_error)}"
        )


class DatabaseOutage(GaveUp):
    """The database stayed away longer than a step could wait."""

    condition = "database unavailable"


def describe(exc: BaseException) -> str:
    """``Type: message``, or the type alone when the error says nothing (a bare TimeoutError)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _CappedExponentialJitter:
    """Waits ``first * 2^(n-1)`` capped at ``cap`` seconds, times a random 50-100 %, after
    failed attempt ``n``: attempts failing together do not retry in lockstep."""

    def __init__(self, first_s: float, cap_s: float) -> None:
        self._first_s = first_s
        self._cap_s = cap_s

    def __call__(self, state: RetryCallState) -> float:
        exponent = min(state.attempt_number - 1, 30)
        ceiling: float = min(self._cap_s, self._first_s * 2.0**exponent)
        return ceiling * random.uniform(0.5, 1.0)  # noqa: S311 jitter, not a secret


def _log_retry(
    what: str, on_retry: Callable[[BaseException], None] | None, context: dict[str, Any]
) -> Callable[[RetryCallState], None]:
    """The hook run before each wait: the caller's ``on_retry``, then one warning line."""

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        if error is None:
            return
        if on_retry is not None:
            on_retry(error)
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "cannot %s (attempt %d, retry in %.1fs): %s",
            what,
            state.attempt_number,
            delay,
            describe(error),
            extra=context,
        )

    return before_sleep


async def retry_transient(
    step: Callable[[], Awaitable[T]],
    *,
    what: str,
    give_up_after_s: float | None = None,
    is_transient: Callable[[BaseException], bool] = is_transient_database_error,
    give_up_as: type[GaveUp] = DatabaseOutage,
    on_retry: Callable[[BaseException], None] | None = None,
    extra: Mapping[str, Any] | None = None,
    first_backoff_s: float = 0.2,
    max_backoff_s: float = 10.0,
) -> T:
    """Return ``step()``'s result, calling it again after each error ``is_transient`` accepts.

    ``what`` completes "cannot …" in the retry's log line (``extra`` goes with it); ``on_retry``
    is called with the error before each wait (a metric, say). ``give_up_after_s`` None retries
    for as long as it takes (until cancelled); otherwise raises ``give_up_as`` (from the last
    error) once that long has passed since the first attempt began. Any other error is raised
    at once, unchanged. As idempotent as ``step``.
    """
    context = dict(extra or {})
    stop: stop_base = stop_never if give_up_after_s is None else stop_after_delay(give_up_after_s)
    retrying = AsyncRetrying(
        retry=retry_if_exception(is_transient),
        wait=_CappedExponentialJitter(first_backoff_s, max_backoff_s),
        stop=stop,
        before_sleep=_log_retry(what, on_retry, context),
    )

    async def attempt() -> T:
        # An async function, so tenacity awaits it whatever ``step`` is (a lambda, a partial).
        return await step()

    started = time.monotonic()
    try:
        result: T = await retrying(attempt)
    except RetryError as gave_up:
        last = gave_up.last_attempt.exception()
        assert last is not None  # noqa: S101 a RetryError follows a failed attempt only
        raise give_up_as(what, time.monotonic() - started, last) from last
    attempts = retrying.statistics.get("attempt_number", 1)
    if attempts > 1:
        log.info("could %s after %d retries", what, attempts - 1, extra=context)
    return result
