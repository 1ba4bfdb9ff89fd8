"""Sends pending delivery records, with bounded retries, and resumes them after a restart.

The consumer only writes records; this loop sends them. It claims due pending records (a
lease, so the periodic resume and any second process never send one twice at a time), and per
record: counts the attempt, sends with a timeout, and then at once writes the outcome. A
retryable failure (429 after its ``Retry-After``, 5xx, timeout, dropped connection) is tried
again with exponential backoff until ``max_attempts``; a permanent one fails at once. A
record whose channel is not configured becomes ``skipped`` without a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import asyncpg

from contracts.events import Channel
from notifier import deliveries
from notifier.deliveries import Delivery, FinalState
from notifier.metrics import NOTIFICATIONS, PROVIDER_LATENCY, RETRIES
from notifier.transport import DeliveryFailed, Transport

log = logging.getLogger(__name__)

T = TypeVar("T")

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
        return ceiling * random.uniform(0.5, 1.0)

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.timeout_s) + LEASE_MARGIN


class Dispatcher:
    """Sends due delivery records until stopped; see the module docstring."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        transports: Mapping[Channel, Transport],
        skip_reasons: Mapping[Channel, str],
        policy: RetryPolicy,
        *,
        exchange: str,
        on_outcome: Callable[[], None] = lambda: None,
        resume_interval_s: float = 30.0,
        max_in_flight: int = 8,
    ) -> None:
        self._pool = pool
        self._transports = transports
        self._skip_reasons = skip_reasons
        self._policy = policy
        self._exchange = exchange
        self._on_outcome = on_outcome
        self._resume_interval_s = resume_interval_s
        self._max_in_flight = max_in_flight
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for due records now (the consumer calls it after committing new ones)."""
        self._wake.set()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def run(self) -> None:
        """Claim and send due records until cancelled; resumes what a crash left pending."""
        failures = 0
        while True:
            self._wake.clear()
            free = self._max_in_flight - len(self._in_flight)
            try:
                claimed = (
                    await deliveries.claim_due(
                        self._pool, self._policy.lease, free, list(self._in_flight)
                    )
                    if free > 0
                    else []
                )
                failures = 0
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                failures += 1
                log.warning("cannot read pending deliveries (attempt %d): %s", failures, exc)
                claimed = []
            for delivery in claimed:
                task = asyncio.create_task(self._deliver(delivery), name=delivery.key)
                self._in_flight[delivery.key] = task
                task.add_done_callback(functools.partial(self._done, delivery.key))
            # Full batch: look again at once; else wait for a wake-up or the resume interval.
            if claimed and len(claimed) == free:
                await asyncio.sleep(0)
                continue
            wait = self._resume_interval_s if not failures else min(30.0, 2.0**failures)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    def _done(self, key: str, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(key, None)
        if not task.cancelled() and (exc := task.exception()) is not None:
            # The record stays pending under its lease; the resume picks it up once it ends.
            log.error("delivery %s stopped by an error, will resume: %r", key, exc, exc_info=exc)
        # A slot came free: anything due waiting for one can go now.
        self._wake.set()

    async def drain(self, timeout_s: float) -> None:
        """Let in-flight deliveries finish for up to ``timeout_s``, then stop them.

        Stopped records have their lease dropped, so the next start resumes them at once.
        """
        tasks = list(self._in_flight.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        keys = [task.get_name() for task in tasks if task.cancelled()]
        if keys:
            log.info("stopped %d deliveries mid-way; they resume at the next start", len(keys))
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await deliveries.release(self._pool, keys)

    async def _deliver(self, delivery: Delivery) -> None:
        extra = {"job_id": delivery.job_id, "channel": delivery.channel, "kind": delivery.kind}
        if (reason := self._skip_reasons.get(delivery.channel)) is not None:
            log.info(
                "%s %s alert skipped: %s", delivery.channel, delivery.kind, reason, extra=extra
            )
            await self._finish(delivery, "skipped", delivery.attempts, f"skipped: {reason}")
            return
        transport = self._transports[delivery.channel]
        attempts = delivery.attempts
        if attempts >= self._policy.max_attempts:
            # The last attempt was started by a process that died before writing its outcome.
            error = f"gave up after {attempts} attempts; last: {delivery.last_error or 'unknown'}"
            await self._finish(delivery, "failed", attempts, error)
            return
        while True:
            attempts = await self._db(
                deliveries.start_attempt, self._pool, delivery, self._policy.lease
            )
            started = time.monotonic()
            try:
                async with asyncio.timeout(self._policy.timeout_s):
                    provider_id = await transport.send(delivery.alert, delivery.idempotency_key)
            except TimeoutError:
                failure = DeliveryFailed(
                    f"{transport.provider} did not answer within {self._policy.timeout_s:g}s",
                    retryable=True,
                )
            except DeliveryFailed as exc:
                failure = exc
            else:
                elapsed = time.monotonic() - started
                # Written right after the answer, nothing in between: for Slack (no
                # idempotency key) this is the whole window in which a crash repeats a post.
                await self._finish(delivery, "sent", attempts, None, provider_id)
                PROVIDER_LATENCY.labels(delivery.channel, "ok").observe(elapsed)
                log.info(
                    "%s %s alert sent after %d attempt(s)",
                    delivery.channel,
                    delivery.kind,
                    attempts,
                    extra=extra,
                )
                return
            outcome = "retryable" if failure.retryable else "permanent"
            PROVIDER_LATENCY.labels(delivery.channel, outcome).observe(time.monotonic() - started)
            if not failure.retryable or attempts >= self._policy.max_attempts:
                log.warning(
                    "%s %s alert failed after %d attempt(s): %s",
                    delivery.channel,
                    delivery.kind,
                    attempts,
                    failure.message,
                    extra=extra,
                )
                await self._finish(delivery, "failed", attempts, failure.message)
                return
            delay = self._policy.delay_s(attempts, failure.retry_after_s)
            RETRIES.labels(delivery.channel).inc()
            log.info(
                "%s %s alert attempt %d failed, retrying in %.2fs: %s",
                delivery.channel,
                delivery.kind,
                attempts,
                delay,
                failure.message,
                extra=extra,
            )
            await self._db(
                deliveries.schedule_retry,
                self._pool,
                delivery,
                failure.message,
                timedelta(seconds=delay),
                self._policy.lease,
            )
            await asyncio.sleep(delay)

    async def _finish(
        self,
        delivery: Delivery,
        state: FinalState,
        attempts: int,
        error: str | None,
        provider_id: str | None = None,
    ) -> None:
        changed = await self._db(
            deliveries.finish,
            self._pool,
            delivery,
            state,
            exchange=self._exchange,
            attempts=attempts,
            error=error,
            provider_id=provider_id,
        )
        if changed:
            NOTIFICATIONS.labels(delivery.channel, delivery.kind, state).inc()
            self._on_outcome()

    async def _db(self, write: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        # A Postgres blip right after a provider accepted must not lose the outcome: the
        # longer the record stays pending, the likelier a repeated Slack post.
        tries = 5
        for attempt in range(1, tries + 1):
            try:
                return await write(*args, **kwargs)
            except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError) as exc:
                if attempt == tries:
                    raise
                log.warning("database write failed (attempt %d), retrying: %s", attempt, exc)
                await asyncio.sleep(min(2.0, 0.2 * 2**attempt))
        raise AssertionError("unreachable")
