"""The cron trigger: a RunRequested at each ``JOB_SCHEDULE`` slot (cron syntax, UTC).

The schedule logic takes a clock, so tests drive it with a fake one. Slots missed while the
process was down are not made up for (the ledger reports them as JobMissed); if the process
falls behind by several slots at once, only the newest one fires. Each slot's request id is
derived from the slot, so a slot published twice still starts one run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from croniter import croniter

log = logging.getLogger(__name__)

_MAX_NAP_S = 60.0
"""Sleep at most this long at once, so a suspended host or a clock step is noticed."""


class Clock(Protocol):
    def now(self) -> datetime: ...

    async def wait(self, seconds: float, stop: asyncio.Event) -> bool:
        """Waits ``seconds`` or until ``stop`` is set; returns whether it is set."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def wait(self, seconds: float, stop: asyncio.Event) -> bool:
        try:
            await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))
        except TimeoutError:
            return False
        return True


def next_slot(schedule: str, after: datetime) -> datetime:
    """Returns the first slot of ``schedule`` strictly after ``after`` (UTC)."""
    slot: datetime = croniter(schedule, after.astimezone(UTC)).get_next(datetime)
    return slot.astimezone(UTC)


def latest_slot(schedule: str, at: datetime) -> datetime:
    """Returns the newest slot of ``schedule`` at or before ``at`` (UTC)."""
    probe = at.astimezone(UTC) + timedelta(microseconds=1)
    slot: datetime = croniter(schedule, probe).get_prev(datetime)
    return slot.astimezone(UTC)


async def run_schedule(
    schedule: str,
    fire: Callable[[datetime], Awaitable[None]],
    stop: asyncio.Event,
    clock: Clock | None = None,
    max_nap_s: float = _MAX_NAP_S,
) -> None:
    """Awaits ``fire(slot)`` at each slot after the start until ``stop`` is set, sleeping at
    most ``max_nap_s`` at once. A slot fires once; ``fire``'s errors propagate (the caller
    decides about retries)."""
    clock = clock or SystemClock()
    last = clock.now()
    log.info("cron schedule %r (UTC): next slot %s", schedule, next_slot(schedule, last))
    while not stop.is_set():
        due = next_slot(schedule, last)
        now = clock.now()
        if now < due:
            if await clock.wait(min((due - now).total_seconds(), max_nap_s), stop):
                return
            continue
        slot = latest_slot(schedule, now)
        if slot > due:
            log.warning("cron fell behind: skipping slots from %s to before %s", due, slot)
        await fire(slot)
        last = slot
