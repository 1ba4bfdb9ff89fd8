"""Sends delivery records, with bounded retries, and resumes them after a restart.

Records reach it two ways. The hot path: the consumer, in the transaction that creates them,
claims the ones there is room for (a lease, the first attempt counted; room is taken with
:meth:`Dispatcher.reserve` through ``notifier.intake.Claim``) and after its commit hands them
over (:meth:`Dispatcher.hand_over`); they are sent at once, with no database round trip
before the request. The resume: the run loop claims due pending records nobody holds (left
unclaimed for lack of room, left by a crash once their lease ran out, released at shutdown).
A lease means the resume and any second process never send one record twice at a time; at
most ``max_in_flight`` records are in flight, counting the consumer's claims.

Per record: each attempt is counted before it is sent (so attempts stay bounded across
crashes), sent with a timeout, and its outcome written at once. A retryable failure (429
after its ``Retry-After``, 5xx, timeout, dropped connection) is tried again with exponential
backoff until ``max_attempts``; a permanent one fails at once. A record whose channel is not
configured becomes ``skipped`` without a request (NotificationSkipped, with the reason).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any, TypeVar

import asyncpg

from contracts.events import Channel
from notifier import deliveries
from notifier.deliveries import Delivery, FinalState
from notifier.metrics import NOTIFICATIONS, PROVIDER_LATENCY, RETRIES
from notifier.retry_policy import RetryPolicy
from notifier.transport import DeliveryFailed, Transport

log = logging.getLogger(__name__)

T = TypeVar("T")


class Dispatcher:
    """Sends delivery records until stopped; see the module docstring."""

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
        self.transports = transports
        self._skip_reasons = skip_reasons
        self.policy = policy
        self._exchange = exchange
        self._on_outcome = on_outcome
        self._resume_interval_s = resume_interval_s
        self._max_in_flight = max_in_flight
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._reserved = 0
        # Due records may be waiting for a slot: a freed slot must wake the run loop. Without
        # it a finished delivery costs no look at the table.
        self._backlog = False
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for due records now (e.g. records the consumer could not claim)."""
        self._backlog = True
        self._wake.set()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def reserve(self, count: int) -> int:
        """Reserve up to ``count`` free slots; return how many. Undo with :meth:`unreserve`."""
        taken = max(0, min(count, self._max_in_flight - len(self._in_flight) - self._reserved))
        self._reserved += taken
        if taken < count:
            self._backlog = True
        return taken

    def unreserve(self, slots: int) -> None:
        self._reserved -= slots
        if slots and self._backlog:
            self._wake.set()

    def hand_over(self, claimed: list[Delivery], reserved: int) -> None:
        """Send ``claimed`` now: records claimed for this process in a committed transaction.

        Their first attempt is already counted (:attr:`Delivery.attempt_counted`); they fill
        ``reserved`` slots taken with :meth:`reserve`, and the slots left over are freed.
        """
        self._reserved -= len(claimed)
        for delivery in claimed:
            self._start(delivery)
        self.unreserve(reserved - len(claimed))

    def _start(self, delivery: Delivery) -> None:
        task = asyncio.create_task(self._deliver(delivery), name=delivery.key)
        self._in_flight[delivery.key] = task
        task.add_done_callback(functools.partial(self._done, delivery.key))

    async def run(self) -> None:
        """Claim and send due records until cancelled; resumes what a crash left pending."""
        failures = 0
        while True:
            self._wake.clear()
            free = self._max_in_flight - len(self._in_flight) - self._reserved
            claimed: list[Delivery] = []
            if free > 0:
                # Held while the query runs, so the consumer cannot take the same room.
                self._reserved += free
                try:
                    claimed = await deliveries.claim_due(
                        self._pool, self.policy.lease, free, list(self._in_flight)
                    )
                    failures = 0
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    failures += 1
                    log.warning("cannot read pending deliveries (attempt %d): %s", failures, exc)
                finally:
                    self._reserved -= free
            for delivery in claimed:
                self._start(delivery)
            # Full batch (or no room): more may be due, so a freed slot must look again.
            self._backlog = free <= 0 or len(claimed) == free
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
        if self._backlog:
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
                "%s %s alert skipped (not sent, not failed): %s",
                delivery.channel,
                delivery.kind,
                reason,
                extra=extra,
            )
            await self._finish(delivery, "skipped", delivery.attempts, reason)
            return
        transport = self.transports[delivery.channel]
        attempts = delivery.attempts
        counted = delivery.attempt_counted
        if not counted and attempts >= self.policy.max_attempts:
            # The last attempt was started by a process that died before writing its outcome.
            error = f"gave up after {attempts} attempts; last: {delivery.last_error or 'unknown'}"
            await self._finish(delivery, "failed", attempts, error)
            return
        while True:
            if counted:
                # Counted (and leased) in the consumer's transaction: no round trip first.
                counted = False
            else:
                attempts = await self._db(
                    deliveries.start_attempt, self._pool, delivery, self.policy.lease
                )
            started = time.monotonic()
            try:
                async with asyncio.timeout(self.policy.timeout_s):
                    provider_id = await transport.send(delivery.alert, delivery.idempotency_key)
            except TimeoutError:
                failure = DeliveryFailed(
                    f"{transport.provider} did not answer within {self.policy.timeout_s:g}s",
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
            if not failure.retryable or attempts >= self.policy.max_attempts:
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
            delay = self.policy.delay_s(attempts, failure.retry_after_s)
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
                self.policy.lease,
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
