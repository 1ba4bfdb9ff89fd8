"""Sends delivery records, with bounded retries, and resumes them after a restart.

Records reach it two ways. The hot path: the consumer, in the transaction that creates them,
claims the ones there is room for (a lease, the first attempt counted; room is taken with
:meth:`Dispatcher.reserve` through ``notifier.intake.Claim``) and after its commit hands them
over (:meth:`Dispatcher.hand_over`); they are sent at once, with no database round trip
before the request. The resume: the run loop claims due pending records nobody holds (left
unclaimed for lack of room, left by a crash once their lease ran out, released at shutdown).
A lease means the resume and any second process never send one record twice at a time; at
most ``max_in_flight`` records are in flight, counting the consumer's claims.

How one record is tried (attempts, retries, its outcome) is :class:`notifier.sending.Sender`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Mapping

import asyncpg

from chassis.retry import TRANSIENT_DATABASE_ERRORS, retry_transient
from contracts.events import Channel
from notifier import deliveries
from notifier.deliveries import Delivery
from notifier.retry_policy import RetryPolicy
from notifier.sending import Sender
from notifier.transport import Transport

log = logging.getLogger(__name__)


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
        self.policy = policy
        self._sender = Sender(pool, transports, skip_reasons, policy, exchange, on_outcome)
        self._resume_interval_s = resume_interval_s
        self._max_in_flight = max_in_flight
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._reserved = 0
        # Due records may be waiting for a slot: a freed slot must wake the run loop. Without
        # it a finished delivery costs no look at the table.
        self._backlog = False
        self._wake = asyncio.Event()
        self._stopping = False

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
        task = asyncio.create_task(self._sender.deliver(delivery), name=delivery.key)
        self._in_flight[delivery.key] = task
        task.add_done_callback(functools.partial(self._done, delivery.key))

    async def run(self) -> None:
        """Claim and send due records until cancelled or stopped; resumes what a crash left
        pending. Waits out a database outage (transient errors) before it claims again."""
        while not self._stopping:
            self._wake.clear()
            free = self._max_in_flight - len(self._in_flight) - self._reserved
            claimed: list[Delivery] = []
            if free > 0:
                # Held while the query runs, so the consumer cannot take the same room.
                self._reserved += free
                try:
                    claimed = await retry_transient(
                        functools.partial(self._claim_due, free),
                        what="read pending deliveries",
                        max_backoff_s=30.0,
                    )
                finally:
                    self._reserved -= free
            for delivery in claimed:
                self._start(delivery)
            # Full batch (or no room): more may be due, so a freed slot must look again.
            self._backlog = free <= 0 or len(claimed) == free
            if claimed and len(claimed) == free:
                await asyncio.sleep(0)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._resume_interval_s)

    async def _claim_due(self, room: int) -> list[Delivery]:
        return await deliveries.claim_due(
            self._pool, self.policy.lease, room, list(self._in_flight)
        )

    def _done(self, key: str, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(key, None)
        if not task.cancelled() and (exc := task.exception()) is not None:
            # The record stays pending under its lease; the resume picks it up once it ends.
            log.error("delivery %s stopped by an error, will resume: %r", key, exc, exc_info=exc)
        if self._backlog:
            # A slot came free: anything due waiting for one can go now.
            self._wake.set()

    async def stop(self, timeout_s: float) -> None:
        """Claim nothing more; let in-flight deliveries finish for up to ``timeout_s``, then
        stop them. Stopped records have their lease dropped, so the next start resumes them."""
        self._stopping = True
        self._wake.set()
        tasks = list(self._in_flight.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        keys = [task.get_name() for task in tasks if task.cancelled()]
        if keys:
            log.info("stopped %d deliveries mid-way; they resume at the next start", len(keys))
            try:
                await deliveries.release(self._pool, keys)
            except TRANSIENT_DATABASE_ERRORS as exc:
                # Their leases then run out by themselves; the resume takes them after.
                log.warning("could not release the stopped deliveries' leases: %s", exc)
