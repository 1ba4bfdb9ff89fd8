"""Scenario 3d: each window a guarantee closes, opened on purpose during one run.

- The relay's: the worker's broker link stalls just as the run starts (publishes on the
  wire, their confirms held back), then is cut: no row may be marked sent unconfirmed.
- The ledger's: its Postgres link is stalled before the run, so its first batch's commit
  hangs on the wire; the ledger is SIGKILLed there: nothing may have been acked.
- The notifier's: Resend holds the outcome's email until the notifier is SIGKILLed: after
  the restart the inbox must hold that email once, whatever was sent again.

Each window is a certainty, not a chance, which is what lets the mutation checks
(``tests/chaos/test_mutation_checks.py``) expect this scenario to fail for a build without
the guarantee.
"""

from __future__ import annotations

import asyncio

from tests.chaos.campaign import Context
from tests.chaos.crashes import QUEUED, UNSENT, kill_while_email_pending, run_timeout, started
from tests.chaos.figures import Row, measure, settle
from tests.chaos.names import StackOptions
from tests.support.broker import eventually
from tests.support.faulty_proxy import FaultyProxy

FINISHED = "SELECT count(*) FROM {recalc}.jobs WHERE status <> 'running'"


async def work_in_flight(ctx: Context) -> Row:
    """See the module docstring."""
    row = Row("3d kills with work in flight")
    daos = ctx.scale.big_daos
    async with (
        FaultyProxy(*ctx.target(ctx.amqp_url)) as worker_mq,
        FaultyProxy(*ctx.target(ctx.database_url)) as ledger_db,
    ):
        options = StackOptions(
            amqp_urls={"worker": ctx.via(ctx.amqp_url, worker_mq.port)},
            database_urls={"ledger": ctx.via(ctx.database_url, ledger_db.port)},
        )
        async with ctx.stack(daos, options) as stack:
            await started(stack, daos)
            stack.resend.hold_next()
            ledger_db.stall()
            await stack.trigger()
            await eventually(
                lambda: stack.scalar(QUEUED), lambda n: n >= 1, run_timeout(daos), 0.02
            )
            worker_mq.stall()  # the relay's first publishes are on the wire, unconfirmed
            await asyncio.sleep(1)  # the fault itself, not a wait
            unsent_at_cut = await stack.scalar(UNSENT)
            worker_mq.cut()
            await asyncio.sleep(1)
            worker_mq.restore()
            await stack.wait_for(FINISHED, 1, run_timeout(daos))
            await stack.wait_for(UNSENT, 0, 120)
            await stack.kill("ledger")  # its first batch's commit still held on the wire
            ledger_db.cut()
            ledger_db.restore()
            await stack.start("ledger")
            await kill_while_email_pending(stack)
            await settle(stack, row, 180)
            row.notes.append(
                f"worker link stalled then cut with {unsent_at_cut} rows unsent; the ledger "
                "killed with its commit on the wire; the notifier killed while Resend held "
                "the outcome's email"
            )
            return await measure(stack, row)
