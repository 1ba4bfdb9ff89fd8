"""Scenarios 14-15: the recalculator's processes run twice, on the machine's broker.

- Two workers: the commands queue's single active consumer gives every request to one of
  them, the other waits. SIGKILL of the active one mid-run leaves its run abandoned (the
  ledger's watchdog), its unsent outbox rows are relayed by the other, and the other takes the
  next request within 30 s (the broker hands it the queue, the run lock died with the
  killed process's database session).
- Two crons on a schedule of every minute: both publish the slot's request, under the same
  request id, and one run starts.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from tests.chaos.campaign import Context
from tests.chaos.crashes import QUEUED, run_timeout
from tests.chaos.figures import Row, measure, settle
from tests.chaos.names import StackOptions
from tests.chaos.runs import ExpectedRun
from tests.chaos.stack import Stack
from tests.support.broker import eventually

TAKEN_WITHIN_S = 30.0
JOBS = "SELECT count(*) FROM {recalc}.jobs"
COMPLETED = "SELECT count(*) FROM {recalc}.jobs WHERE status = 'completed'"
WATCHDOG = {"JOB_STALE_AFTER": "15s", "WATCHDOG_INTERVAL": "1s"}


def logged(stack: Stack, instance: str, text: str) -> int:
    """How many lines of ``instance``'s log hold ``text``."""
    path = stack.processes[instance].log_path
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    return sum(text in line for line in lines)


async def standby_worker(ctx: Context) -> Row:
    """See the module docstring."""
    row = Row("14 active and standby workers")
    # A run the ledger folds as it goes: a long one, behind a loaded ledger, would look silent
    # for the short JOB_STALE_AFTER that lets the killed run be abandoned in seconds.
    daos = ctx.scale.mid_daos
    options = StackOptions(instances={"worker": 2}, env={"ledger": WATCHDOG})
    async with ctx.stack(daos, options) as stack:
        await stack.start(*stack.instances)
        await stack.import_daos()
        first = await stack.trigger(expect="abandoned")
        await eventually(lambda: stack.scalar(QUEUED), lambda n: n >= 2, run_timeout(daos), 0.02)
        active = next(w for w in ("worker", "worker-2") if logged(stack, w, str(first)))
        standby = "worker-2" if active == "worker" else "worker"
        killed_at = time.monotonic()
        await stack.kill(active)
        dead = await stack.text("SELECT id FROM {recalc}.jobs")
        if await stack.text("SELECT status FROM {recalc}.jobs") != "running":
            row.problems.append("the run had ended before its worker was killed")
        await stack.trigger()
        try:
            await stack.wait_for(JOBS, 2, TAKEN_WITHIN_S - (time.monotonic() - killed_at))
        except AssertionError:
            row.problems.append(f"the standby took no request within {TAKEN_WITHIN_S:.0f}s")
        taken_s = time.monotonic() - killed_at
        await stack.wait_for(COMPLETED, 1, run_timeout(daos))
        await stack.wait_for(
            "SELECT count(*) FROM {ledger}.job_logs"
            f" WHERE status = 'failed' AND id::text = '{dead}'",
            1,
            60,
        )
        await settle(stack, row, 120)
        abandoned = await stack.scalar(
            "SELECT count(*) FROM {ledger}.job_events WHERE event_type = 'JobAbandoned'"
        )
        row.check(abandoned == 1, f"{abandoned} runs abandoned, only the killed one must be")
        row.check(
            logged(stack, standby, "run requested") == 1,
            f"{standby} answered {logged(stack, standby, 'run requested')} requests, not 1",
        )
        row.notes.append(
            f"SIGKILL of the active worker ({active}) mid-run: its run abandoned; {standby} "
            f"took the next request {taken_s:.1f}s after the kill and completed it"
        )
        return await measure(stack, row)


async def past_minute_boundary(margin_s: float = 8.0) -> None:
    """Return at once unless the next whole minute is within ``margin_s``; then return just
    after it, so processes started now all wait for the same slot."""
    now = datetime.now(UTC)
    to_next = 60 - now.second - now.microsecond / 1e6
    if to_next < margin_s:
        await asyncio.sleep(to_next + 0.5)  # waits out the slot, it is the schedule itself


async def two_crons(ctx: Context) -> Row:
    """See the module docstring."""
    row = Row("15 two crons, one slot")
    daos = ctx.scale.mid_daos
    options = StackOptions(
        instances={"cron": 2, "worker": 2}, env={"cron": {"JOB_SCHEDULE": "* * * * *"}}
    )
    async with ctx.stack(daos, options) as stack:
        crons = ["cron", "cron-2"]
        await stack.start(*(i for i in stack.instances if i not in crons))
        await stack.import_daos()
        stack.expected.append(ExpectedRun(stack.registry()))
        await past_minute_boundary()
        await stack.start(*crons)
        published = "published RunRequested"

        async def publishes() -> list[int]:
            return [logged(stack, c, published) for c in crons]

        await eventually(
            publishes,
            lambda counts: all(n >= 1 for n in counts),
            timeout_s=75,
            interval_s=0.5,
        )
        await asyncio.gather(*(stack.processes[c].stop() for c in crons))
        counts = [logged(stack, c, published) for c in crons]
        row.check(counts == [1, 1], f"the crons published {counts} requests, not one each")
        await stack.wait_for(COMPLETED, 1, run_timeout(daos))
        await settle(stack, row, 120)
        jobs = await stack.scalar(JOBS)
        row.check(jobs == 1, f"{jobs} runs started for one slot")
        answers = await stack.scalar(
            "SELECT count(*) FROM {ledger}.job_events"
            " WHERE event_type IN ('RunAccepted', 'RunRefused')"
        )
        row.check(answers == 1, f"{answers} answers to the slot's two requests, not 1")
        row.notes.append(
            f"two crons each published the slot's request ({counts}); {jobs} run, "
            f"{answers} answer (RunAccepted), the second request acked unanswered"
        )
        return await measure(stack, row)
