"""One delivery record's attempts: counted, sent with a timeout, each outcome written at once.

Each attempt is counted before it is sent (so attempts stay bounded across crashes), sent with
a timeout, and its outcome written at once. A retryable failure (429 after its
``Retry-After``, 5xx, timeout, dropped connection) is tried again with exponential backoff
until ``max_attempts``; a permanent one fails at once. A record whose channel is not
configured becomes ``skipped`` without a request (NotificationSkipped, with the reason). The
database writes are retried through a passing outage (:func:`chassis.retry.retry_transient`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any, TypeVar

import asyncpg

from chassis.retry import retry_transient
from contracts.events import Channel
from notifier import deliveries
from notifier.deliveries import Delivery, FinalState
from notifier.metrics import NOTIFICATIONS, PROVIDER_LATENCY, RETRIES
from notifier.retry_policy import RetryPolicy
from notifier.transport import DeliveryFailed, Transport

log = logging.getLogger(__name__)

T = TypeVar("T")

DATABASE_PATIENCE_S = 10.0
"""How long a delivery's database write is retried before the delivery stops as an error (its
record stays pending under its lease; the resume picks it up once that ends)."""


class Sender:
    """Tries one delivery record after another (the dispatcher runs several at once)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        transports: Mapping[Channel, Transport],
        skip_reasons: Mapping[Channel, str],
        policy: RetryPolicy,
        exchange: str,
        on_outcome: Callable[[], None],
    ) -> None:
        """``on_outcome`` is called after each outcome is written (its event is in the outbox)."""
        self._pool = pool
        self.transports = transports
        self._skip_reasons = skip_reasons
        self.policy = policy
        self._exchange = exchange
        self._on_outcome = on_outcome

    async def deliver(self, delivery: Delivery) -> None:
        """Try ``delivery`` until it is sent, failed or skipped, writing each outcome at once.

        Raises ``DatabaseOutage`` if a write waited too long for the database; the record
        then stays pending under its lease, and the resume takes it up after.
        """
        if (reason := self._skip_reasons.get(delivery.channel)) is not None:
            log.info(
                "%s %s alert skipped (not sent, not failed): %s",
                delivery.channel,
                delivery.kind,
                reason,
                extra=_context(delivery),
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
                    f"count an attempt of {delivery.key}",
                    deliveries.start_attempt,
                    self._pool,
                    delivery,
                    self.policy.lease,
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
                await self._sent(delivery, attempts, provider_id, started)
                return
            delay = await self._after_failure(delivery, attempts, failure, started)
            if delay is None:
                return
            await asyncio.sleep(delay)

    async def _sent(
        self, delivery: Delivery, attempts: int, provider_id: str | None, started: float
    ) -> None:
        elapsed = time.monotonic() - started
        # Written right after the answer, nothing in between: for Slack (no idempotency
        # key) this is the whole window in which a crash repeats a post.
        await self._finish(delivery, "sent", attempts, None, provider_id)
        PROVIDER_LATENCY.labels(delivery.channel, "ok").observe(elapsed)
        log.info(
            "%s %s alert sent after %d attempt(s)",
            delivery.channel,
            delivery.kind,
            attempts,
            extra=_context(delivery),
        )

    async def _after_failure(
        self, delivery: Delivery, attempts: int, failure: DeliveryFailed, started: float
    ) -> float | None:
        """Record a failed attempt: final (None) or scheduled again (the seconds to wait)."""
        outcome = "retryable" if failure.retryable else "permanent"
        PROVIDER_LATENCY.labels(delivery.channel, outcome).observe(time.monotonic() - started)
        what = f"{delivery.channel} {delivery.kind} alert"
        if not failure.retryable or attempts >= self.policy.max_attempts:
            log.warning(
                "%s failed after %d attempt(s): %s",
                what,
                attempts,
                failure.message,
                extra=_context(delivery),
            )
            await self._finish(delivery, "failed", attempts, failure.message)
            return None
        delay = self.policy.delay_s(attempts, failure.retry_after_s)
        RETRIES.labels(delivery.channel).inc()
        log.info(
            "%s attempt %d failed, retrying in %.2fs: %s",
            what,
            attempts,
            delay,
            failure.message,
            extra=_context(delivery),
        )
        await self._db(
            f"schedule the retry of {delivery.key}",
            deliveries.schedule_retry,
            self._pool,
            delivery,
            failure.message,
            timedelta(seconds=delay),
            self.policy.lease,
        )
        return delay

    async def _finish(
        self,
        delivery: Delivery,
        state: FinalState,
        attempts: int,
        error: str | None,
        provider_id: str | None = None,
    ) -> None:
        changed = await self._db(
            f"record {delivery.key} {state}",
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

    async def _db(
        self, what: str, write: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any
    ) -> T:
        # A Postgres blip right after a provider accepted must not lose the outcome: the
        # longer the record stays pending, the likelier a repeated Slack post.
        return await retry_transient(
            functools.partial(write, *args, **kwargs),
            what=what,
            give_up_after_s=DATABASE_PATIENCE_S,
            max_backoff_s=2.0,
        )


def _context(delivery: Delivery) -> dict[str, object]:
    """What a log line about ``delivery`` carries."""
    return {"job_id": delivery.job_id, "channel": delivery.channel, "kind": delivery.kind}
