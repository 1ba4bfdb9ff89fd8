"""The cron schedule, driven by a fake clock: the right slots, once each, in UTC."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from chassis.settings import SettingsError, load_settings
from recalculator.config import Settings
from recalculator.cron import latest_slot, next_slot, run_schedule
from recalculator.trigger import slot_request_id


class FakeClock:
    """Time moves only when the schedule waits; ``lag`` adds time spent in each publish."""

    def __init__(self, start: datetime) -> None:
        self.current = start
        self.waits: list[float] = []

    def now(self) -> datetime:
        return self.current

    async def wait(self, seconds: float, stop: asyncio.Event) -> bool:
        self.waits.append(seconds)
        self.current += timedelta(seconds=seconds)
        return stop.is_set()


async def fired_slots(
    schedule: str,
    start: datetime,
    count: int,
    publish_takes: timedelta = timedelta(0),
    max_nap_s: float = 86_400,
) -> tuple[list[datetime], FakeClock]:
    clock = FakeClock(start)
    stop = asyncio.Event()
    fired: list[datetime] = []

    async def fire(slot: datetime) -> None:
        fired.append(slot)
        clock.current += publish_takes
        if len(fired) == count:
            stop.set()

    await asyncio.wait_for(run_schedule(schedule, fire, stop, clock, max_nap_s), timeout=5)
    return fired, clock


async def test_the_default_schedule_fires_every_monday_at_midnight_utc() -> None:
    sunday_evening = datetime(2025, 6, 1, 23, 59, 30, tzinfo=UTC)
    fired, _ = await fired_slots("0 0 * * 1", sunday_evening, 3)
    assert fired == [
        datetime(2025, 6, 2, tzinfo=UTC),
        datetime(2025, 6, 9, tzinfo=UTC),
        datetime(2025, 6, 16, tzinfo=UTC),
    ]


async def test_a_start_exactly_on_a_slot_does_not_fire_that_slot() -> None:
    # The ledger reports a missed slot; the cron never fires one from before its start.
    fired, _ = await fired_slots("*/15 * * * *", datetime(2025, 6, 2, 10, 0, tzinfo=UTC), 2)
    assert fired == [
        datetime(2025, 6, 2, 10, 15, tzinfo=UTC),
        datetime(2025, 6, 2, 10, 30, tzinfo=UTC),
    ]


async def test_a_cron_that_falls_behind_fires_only_the_newest_slot() -> None:
    start = datetime(2025, 6, 2, 10, 1, tzinfo=UTC)
    fired, _ = await fired_slots("*/15 * * * *", start, 2, publish_takes=timedelta(minutes=40))
    # 10:15 fired, its publish took until 10:55: 10:30 and 10:45 are skipped, 10:45 is newest.
    assert fired == [
        datetime(2025, 6, 2, 10, 15, tzinfo=UTC),
        datetime(2025, 6, 2, 10, 45, tzinfo=UTC),
    ]


async def test_long_waits_are_taken_in_naps_of_at_most_a_minute() -> None:
    start = datetime(2025, 6, 1, 23, 50, tzinfo=UTC)
    _, clock = await fired_slots("0 0 * * 1", start, 1, max_nap_s=60)
    assert clock.waits and max(clock.waits) <= 60
    assert sum(clock.waits) == pytest.approx(600)


async def test_a_stop_while_waiting_ends_the_schedule_without_firing() -> None:
    stop = asyncio.Event()
    stop.set()
    fired: list[datetime] = []

    async def fire(slot: datetime) -> None:
        fired.append(slot)

    await run_schedule("* * * * *", fire, stop, FakeClock(datetime(2025, 6, 2, tzinfo=UTC)))
    assert fired == []


def test_slot_helpers_work_in_utc_whatever_the_input_zone() -> None:
    paris_midnight = datetime(2025, 6, 2, 2, 0, tzinfo=UTC).astimezone()
    assert latest_slot("0 0 * * 1", paris_midnight) == datetime(2025, 6, 2, tzinfo=UTC)
    assert next_slot("0 0 * * 1", datetime(2025, 6, 2, tzinfo=UTC)) == datetime(
        2025, 6, 9, tzinfo=UTC
    )


def test_a_slot_always_gets_the_same_request_id() -> None:
    slot = "2025-06-02T00:00:00+00:00"
    assert slot_request_id("weekly-gvs-recalculation", slot) == slot_request_id(
        "weekly-gvs-recalculation", slot
    )
    assert slot_request_id("weekly-gvs-recalculation", slot) != slot_request_id(
        "weekly-gvs-recalculation", "2025-06-09T00:00:00+00:00"
    )


@pytest.mark.parametrize("schedule", ["every monday", "0 0 * *", "61 0 * * 1", "0 0 * * 1 0"])
def test_a_bad_cron_expression_stops_the_start_naming_job_schedule(
    monkeypatch: pytest.MonkeyPatch, schedule: str
) -> None:
    monkeypatch.setenv("JOB_SCHEDULE", schedule)
    with pytest.raises(SettingsError, match="JOB_SCHEDULE.*not a cron expression"):
        load_settings(Settings)
