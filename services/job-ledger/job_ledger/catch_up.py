"""Whether the ledger has caught up with its queue: what the watchdog waits for before judging.

A job looks silent, and a slot looks missed, as long as the events that say otherwise are not
folded yet: after the ledger or the broker was down they wait in the ledger's queue, in the
consumer's hands, or still in a producer's outbox (its relay republishes them once the broker is
back). So the watchdog judges only when

1. the consumer has been attached for at least ``settle`` since it last (re)attached, which
   gives the producers' relays time to publish what they held;
2. the broker counts no ready message on the ledger's queue;
3. every message the consumer had received at that moment is handled (its batch committed and
   acked, or dead-lettered), waited for at most ``commit_wait``.

Not seen: messages another ledger process holds unacked (the broker's answer to a passive
declare counts ready messages only).
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Protocol

import aio_pika
from aio_pika.abc import AbstractRobustConnection

from chassis.attachment import BROKER_CALL_TIMEOUT_S, Attachment, broker_ready_count
from chassis.progress import DeliveryProgress

COMMIT_WAIT = timedelta(seconds=10)
"""How long the gate waits for the messages in the consumer's hands to be committed."""


class CatchUp(Protocol):
    """What the watchdog asks before it judges (a :class:`CatchUpGate`)."""

    async def wait_reason(self) -> str | None:
        """None when caught up, else why the watchdog must wait."""
        ...


class CatchUpGate:
    """Says whether the ledger has folded everything the broker holds for it (module docstring)."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        attachment: Attachment,
        progress: DeliveryProgress,
        *,
        settle: timedelta,
        commit_wait: timedelta = COMMIT_WAIT,
    ) -> None:
        self._connection = connection
        self._attachment = attachment
        self._progress = progress
        self._settle_s = settle.total_seconds()
        self._commit_wait_s = commit_wait.total_seconds()

    async def wait_reason(self) -> str | None:
        """None when caught up, else one line saying what is awaited; never raises.

        Asks the broker (at most :data:`BROKER_CALL_TIMEOUT_S`), then waits at most
        ``commit_wait`` for the consumer. Idempotent: it only reads.
        """
        queue = self._attachment.queue_name
        attached_at = self._attachment.attached_at
        if attached_at is None or self._attachment.detached:
            return f"the consumer is not attached to {queue}"
        attached_for = time.monotonic() - attached_at
        if attached_for < self._settle_s:
            return (
                f"the consumer (re)attached to {queue} {attached_for:.0f}s ago; producers may"
                f" still be publishing what they held (settling for {self._settle_s:.0f}s)"
            )
        try:
            ready = await asyncio.wait_for(
                broker_ready_count(self._connection, queue), BROKER_CALL_TIMEOUT_S
            )
        except (aio_pika.exceptions.AMQPError, TimeoutError, RuntimeError, OSError) as exc:
            return f"cannot ask the broker for the backlog of {queue}: {type(exc).__name__}: {exc}"
        if ready > 0:
            return f"{ready} messages wait in {queue}"
        mark = self._progress.received
        if not await self._progress.wait_handled(mark, self._commit_wait_s):
            left = mark - self._progress.handled
            return f"{left} received messages are not committed yet"
        return None
