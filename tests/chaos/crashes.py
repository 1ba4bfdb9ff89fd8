"""Scenarios 1-4: processes killed, the broker and Postgres restarted, links cut or stalled,
and a cold start in the wrong order."""

from __future__ import annotations

import asyncio
import time

import aio_pika

from tests.chaos.campaign import Context
from tests.chaos.faults import (
    ensure_broker_up,
    ensure_postgres_up,
    queue_consumers,
    restart_postgres,
    stop_broker,
)
from tests.chaos.figures import Row, measure, settle
from tests.chaos.names import Service, StackOptions
from tests.chaos.stack import Stack
from tests.support.broker import eventually
from tests.support.faulty_proxy import FaultyProxy

UNSENT = "SELECT count(*) FROM {recalc}.outbox WHERE sent_at IS NULL"
QUEUED = "SELECT count(*) FROM {recalc}.outbox"


def run_timeout(daos: int) -> float:
    """A generous bound for a run of ``daos`` DAOs on a 2-core machine under faults."""
    return 120 + daos * 0.03


async def at_least(stack: Stack, query: str, value: int, timeout_s: float) -> int:
    return await eventually(
        lambda: stack.scalar(query), lambda n: n >= value, timeout_s, interval_s=0.2
    )


async def started(stack: Stack, daos: int) -> None:
    await stack.start("ledger", "notifier", "worker")
    await stack.import_daos()


async def kill_while_email_pending(stack: Stack, timeout_s: float = 120) -> None:
    """Once the fake Resend holds a request (armed with ``hold_next``), SIGKILL the notifier,
    let the request go, and start the notifier again. Raises ``TimeoutError`` when no request
    comes to be held."""
    await asyncio.wait_for(stack.resend.holding.wait(), timeout_s)
    await stack.kill("notifier")
    stack.resend.release()
    await stack.start("notifier")


async def consumer_crashes(ctx: Context) -> Row:
    """The ledger and the notifier SIGKILLed in turn at random points of a long run, and the
    notifier once more while the outcome's email is pending."""
    row = Row("1 consumer crashes")
    daos = ctx.scale.big_daos
    async with ctx.stack(daos) as stack:
        await started(stack, daos)
        total = daos + 2
        points = sorted(ctx.random.sample(range(total // 20, total * 9 // 10), ctx.scale.kills - 1))
        # The outcome's email is the first request Resend gets: it is held until the kill.
        stack.resend.hold_next()
        await stack.trigger()
        kills = {"ledger": 0, "notifier": 0}
        for i, point in enumerate(points):
            await at_least(stack, "SELECT count(*) FROM {ledger}.job_events", point, 300)
            victim: Service = "ledger" if i % 2 == 0 else "notifier"
            await stack.kill(victim)
            kills[victim] += 1
            await stack.start(victim)
        await stack.wait_for(
            "SELECT count(*) FROM {recalc}.jobs WHERE status <> 'running'", 1, run_timeout(daos)
        )
        await kill_while_email_pending(stack)
        kills["notifier"] += 1
        await settle(stack, row, 180)
        row.notes.append(
            f"{sum(kills.values())} SIGKILLs: {kills['ledger']} ledger, "
            f"{kills['notifier']} notifier (the last while Resend held the outcome's email)"
        )
        return await measure(stack, row)


async def producer_crash(ctx: Context) -> Row:
    """The worker SIGKILLed mid-run while its broker link is cut (so unsent rows wait in the
    outbox), restarted: the rows are published, the dead run is abandoned, a new run completes.
    """
    row = Row("2 producer crash")
    daos = ctx.scale.mid_daos
    async with FaultyProxy(*ctx.target(ctx.amqp_url)) as link:
        options = StackOptions(
            amqp_urls={"worker": ctx.via(ctx.amqp_url, link.port)},
            env={"ledger": {"JOB_STALE_AFTER": "5s", "WATCHDOG_INTERVAL": "1s"}},
        )
        async with ctx.stack(daos, options) as stack:
            await started(stack, daos)
            await stack.trigger()
            await at_least(stack, QUEUED, daos // 4, run_timeout(daos))
            link.stall()  # publishes in flight, their confirms held back, then the link dies
            await asyncio.sleep(1)
            link.cut()
            await at_least(stack, UNSENT, min(50, daos // 4), 60)
            await stack.kill("worker")
            unsent = await stack.scalar(UNSENT)
            dead = await stack.text("SELECT id FROM {recalc}.jobs")
            # A small run can finish into the outbox before the kill lands: then its JobFinished
            # (unsent) must arrive after the restart instead of a JobAbandoned.
            finished = await stack.text("SELECT status FROM {recalc}.jobs")
            stack.expected[0].status = "abandoned" if finished == "running" else "completed"
            link.restore()
            await stack.start("worker")
            await stack.wait_for(UNSENT, 0, 60)
            outcome = "JobAbandoned" if finished == "running" else "JobFinished"
            abandoned = await stack.wait_for(
                f"SELECT count(*) FROM {{ledger}}.job_events WHERE event_type = '{outcome}'"
                f" AND job_id::text = '{dead}'",
                1,
                60,
            )
            expected = "failed" if finished == "running" else finished
            row.check(
                await stack.text("SELECT status FROM {ledger}.job_logs WHERE id::text = $1", dead)
                == expected,
                f"the dead run is not {expected} in job_logs",
            )
            await stack.trigger()
            # The next run completes; the dead one counts too if it had completed before the kill.
            await stack.wait_for(
                "SELECT count(*) FROM {recalc}.jobs WHERE status = 'completed'",
                2 if finished == "completed" else 1,
                run_timeout(daos),
            )
            await settle(stack, row, 120)
            fate = (
                f"dead run abandoned ({abandoned} JobAbandoned)"
                if finished == "running"
                else f"the run had finished {finished} before the kill; its JobFinished arrived"
            )
            row.notes.append(
                f"{unsent} rows unsent at the kill, all published after the restart; "
                f"{fate}; a new run completed"
            )
            return await measure(stack, row)


async def broker_restart(ctx: Context) -> Row:
    """RabbitMQ stopped (``stop_app``) and started again several times during a long run."""
    row = Row("3 broker restart")
    daos = ctx.scale.big_daos
    async with ctx.stack(daos) as stack:
        await started(stack, daos)
        topology = stack.names.topology
        queues = {topology.ledger_queue, topology.notifier_queue, topology.commands_queue}
        restarts = ctx.scale.broker_restarts
        total = daos + 2
        back_in: list[float] = []
        await stack.trigger()
        try:
            for i in range(restarts):
                point = total * (i + 1) // (restarts + 2)
                await at_least(stack, QUEUED, point, run_timeout(daos))
                await stop_broker()
                await asyncio.sleep(ctx.scale.broker_down_s)  # the outage itself, not a wait
                await ensure_broker_up()
                up = time.monotonic()
                await eventually(
                    lambda: queue_consumers(queues),
                    lambda found: all(found.get(q, 0) >= 1 for q in queues),
                    timeout_s=30,
                    interval_s=1,
                )
                back_in.append(time.monotonic() - up)
        finally:
            await ensure_broker_up()
        await stack.wait_for(
            "SELECT count(*) FROM {recalc}.jobs WHERE status <> 'running'", 1, run_timeout(daos)
        )
        finished = time.monotonic()
        await stack.wait_for(UNSENT, 0, 60)
        await settle(stack, row, 120)
        row.notes.append(
            f"{restarts} restarts, {ctx.scale.broker_down_s:.0f}s down each; every queue had "
            f"its consumer back within {max(back_in):.1f}s; outbox empty "
            f"{time.monotonic() - finished:.1f}s after the run"
        )
        return await measure(stack, row)


async def network_faults(ctx: Context) -> Row:
    """Links of the worker and the ledger through proxies that stall, slow and cut them."""
    row = Row("3b network faults")
    daos = ctx.scale.mid_daos
    async with (
        FaultyProxy(*ctx.target(ctx.amqp_url)) as worker_mq,
        FaultyProxy(*ctx.target(ctx.amqp_url)) as ledger_mq,
        FaultyProxy(*ctx.target(ctx.database_url)) as ledger_db,
    ):
        options = StackOptions(
            amqp_urls={
                "worker": ctx.via(ctx.amqp_url, worker_mq.port),
                "ledger": ctx.via(ctx.amqp_url, ledger_mq.port),
            },
            database_urls={"ledger": ctx.via(ctx.database_url, ledger_db.port)},
        )
        async with ctx.stack(daos, options) as stack:
            await started(stack, daos)
            await stack.trigger()
            done = 0
            for proxy in (worker_mq, ledger_db, ledger_mq, worker_mq, ledger_db, ledger_mq):
                proxy.stall()  # a publish or a commit in flight, its answer held back
                await asyncio.sleep(2)
                proxy.cut()
                await asyncio.sleep(1)
                proxy.restore()
                proxy.slow(0.02)
                await asyncio.sleep(1.5)
                proxy.slow(0)
                done += 1
            await stack.wait_for(
                "SELECT count(*) FROM {recalc}.jobs WHERE status <> 'running'",
                1,
                run_timeout(daos),
            )
            await settle(stack, row, 180)
            row.notes.append(
                f"{done} stall-then-cut-then-slow rounds over worker-broker, ledger-broker "
                "and ledger-postgres links"
            )
            return await measure(stack, row)


async def cold_start(ctx: Context) -> Row:
    """A run on fresh names with only the worker up; the ledger and notifier start later."""
    row = Row("3c cold start, wrong order")
    daos = ctx.scale.mid_daos
    async with ctx.stack(daos) as stack:
        await stack.start("worker")
        await stack.import_daos()
        await stack.trigger()
        await stack.wait_for(
            "SELECT count(*) FROM {recalc}.jobs WHERE status <> 'running'", 1, run_timeout(daos)
        )
        await stack.wait_for(UNSENT, 0, 60)
        connection = await aio_pika.connect(ctx.amqp_url)
        try:
            channel = await connection.channel()
            queue = await channel.declare_queue(stack.names.topology.ledger_queue, passive=True)
            waiting = int(queue.declaration_result.message_count or 0)
        finally:
            await connection.close()
        # Every event the worker published (the run's and its answer to the request).
        published = await stack.scalar(QUEUED)
        row.check(
            waiting == published,
            f"{waiting} events waited in the ledger's queue, {published} were published",
        )
        await stack.start("ledger", "notifier")
        await settle(stack, row, 120)
        row.notes.append(f"{waiting} events waited in the queue for the ledger's first start")
        return await measure(stack, row)


async def database_restart(ctx: Context) -> Row:
    """Postgres restarted mid-run: nothing acked is missing, every process carries on."""
    row = Row("4 database restart")
    daos = ctx.scale.big_daos
    options = StackOptions(env={"ledger": {"JOB_STALE_AFTER": "30s", "WATCHDOG_INTERVAL": "1s"}})
    async with ctx.stack(daos, options) as stack:
        await started(stack, daos)
        await stack.trigger()
        await at_least(stack, QUEUED, daos // 3, run_timeout(daos))
        try:
            await restart_postgres()
        finally:
            await ensure_postgres_up()
        await stack.wait_for(
            "SELECT count(*) FROM {ledger}.job_logs WHERE status <> 'running'",
            1,
            run_timeout(daos),
        )
        first = await stack.text("SELECT status FROM {ledger}.job_logs")
        await stack.trigger(dao_ids=[f"dao-{i:05d}" for i in range(50)])
        await stack.wait_for(
            "SELECT count(*) FROM {ledger}.job_logs WHERE status <> 'running'", 2, 120
        )
        await settle(stack, row, 120)
        same = all(p.running and p.starts == 1 for p in stack.processes.values())
        row.check(same, "a service died and was not the same process afterwards")
        await measure(stack, row)
        # Both runs are asserted complete and completed by measure (stack.expected).
        row.notes.append(
            f"run under restart ended {first}, a second run of 50 DAOs ended "
            f"{await stack.text('SELECT status FROM {ledger}.job_logs ORDER BY started_at DESC')}"
            "; all three processes survived (no restart)"
        )
        return row
