"""Scenarios 10-13: a long run on the three-node cluster while a node dies, restarts or is cut
off, with two instances of every service.

Every service is given the three nodes' URLs, each through the node's fault proxy, and runs
twice (two ledgers and two notifiers competing on their queues, two workers of which the
commands queue's single active consumer makes one the standby). Each scenario asserts what
the campaign asserts of every run (nothing lost, nothing duplicated, every email once, the
run complete) and, of the cluster: every consumer of every instance attached again on a live
channel within 30 s of each fault, and the worker's outbox empty within 60 s of the run's end.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tests.chaos.campaign import Context
from tests.chaos.cluster_ops import (
    BACK_WITHIN_S,
    Placement,
    all_online,
    consumers_back,
    declare_through,
    services_url,
)
from tests.chaos.crashes import QUEUED, UNSENT, at_least, run_timeout
from tests.chaos.figures import Row, measure, settle
from tests.chaos.names import StackOptions
from tests.chaos.stack import Stack
from tests.cluster.harness import RabbitCluster
from tests.support.broker import eventually

FINISHED = "SELECT count(*) FROM {recalc}.jobs WHERE status <> 'running'"
OUTBOX_EMPTY_WITHIN_S = 60.0
INSTANCES = 2


@dataclass
class ClusterRun:
    """What a fault gets: the cluster, the stack, the scenario's row, and the nodes by role."""

    cluster: RabbitCluster
    stack: Stack
    row: Row
    ctx: Context
    connected: str
    """The node every service connected to (the first of their URLs)."""
    leader: str
    """The node leading the ledger's queue when the run started."""
    back_in: list[float] = field(default_factory=list)

    async def point(self, fraction: float) -> None:
        """Wait until the worker has written ``fraction`` of the run's events."""
        daos = self.ctx.scale.big_daos
        await at_least(self.stack, QUEUED, int((daos + 2) * fraction), run_timeout(daos))

    async def wait_consumers(self, fault: str, since: float) -> None:
        """Record how long every consumer took to be back after ``fault``, or the problem."""
        seconds, found = await consumers_back(self.cluster, self.stack, since)
        if seconds is None:
            self.row.problems.append(
                f"after {fault}: consumers not back within {BACK_WITHIN_S:.0f}s "
                f"(live: {dict(found)})"
            )
        else:
            self.back_in.append(seconds)


async def ledgers_went_on(stack: Stack, before: int) -> int:
    """The events stored once the ledgers stored more than ``before``, or every event the
    worker wrote (a run that had ended); raises ``AssertionError`` after 30 s."""

    async def stored_and_written() -> tuple[int, int]:
        return await stack.stored(), await stack.scalar(QUEUED)

    stored, _ = await eventually(
        stored_and_written, lambda s: s[0] > before or s[0] >= s[1], BACK_WITHIN_S, 0.2
    )
    return stored


Fault = Callable[[ClusterRun], Awaitable[str]]
"""Causes a scenario's faults during the run; returns the note that says what it did."""


async def on_cluster(ctx: Context, name: str, placement: Placement, fault: Fault) -> Row:
    """Run ``fault`` during a run of ``ctx.scale.big_daos`` DAOs on the cluster and measure."""
    cluster = await ctx.rabbit_cluster()
    await asyncio.to_thread(cluster.heal)
    row = Row(name)
    daos = ctx.scale.big_daos
    url = services_url(cluster, placement.connect_to)
    options = StackOptions(
        amqp_urls={"ledger": url, "notifier": url, "worker": url},
        instances={"ledger": INSTANCES, "notifier": INSTANCES, "worker": INSTANCES},
    )
    # The tap and the clean-up go to the first node directly (healed before they need it).
    context = dataclasses.replace(ctx, amqp_url=cluster.amqp_urls[0])
    try:
        async with context.stack(daos, options) as stack:
            leader = await declare_through(cluster, stack, placement.declare_on)
            run = ClusterRun(cluster, stack, row, ctx, cluster.names[placement.connect_to], leader)
            await stack.start(*stack.instances)
            await stack.import_daos()
            started = time.monotonic()
            await stack.trigger()
            note = await fault(run)
            await stack.wait_for(FINISHED, 1, run_timeout(daos))
            ended = time.monotonic()
            try:
                await stack.wait_for(UNSENT, 0, OUTBOX_EMPTY_WITHIN_S)
            except AssertionError:
                row.problems.append(f"outbox not empty {OUTBOX_EMPTY_WITHIN_S:.0f}s after the run")
            empty_after = time.monotonic() - ended
            await asyncio.to_thread(cluster.heal)
            await settle(stack, row, 180)
            slowest = max(run.back_in, default=float("nan"))
            row.notes.append(
                f"{note}; {INSTANCES} ledgers, {INSTANCES} notifiers, {INSTANCES} workers "
                f"(one standby); every consumer back within {slowest:.1f}s; run took "
                f"{ended - started:.0f}s, outbox empty {empty_after:.1f}s after it"
            )
            return await measure(stack, row)
    finally:
        await asyncio.to_thread(cluster.heal)


async def connected_node_killed(ctx: Context) -> Row:
    """SIGKILL of the node every service is connected to (the queues are led elsewhere); it
    stays down until the run has ended."""

    async def fault(run: ClusterRun) -> str:
        await run.point(1 / 3)
        since = time.monotonic()
        await asyncio.to_thread(run.cluster.kill, run.connected)
        await run.wait_consumers(f"SIGKILL of {run.connected}", since)
        return f"SIGKILL of {run.connected} (connected; queues led by {run.leader})"

    return await on_cluster(ctx, "10 connected node killed", Placement(2, 0), fault)


async def leader_node_killed(ctx: Context) -> Row:
    """SIGKILL of the node leading the ledger's queue (the services are connected to another);
    it stays down until the run has ended."""

    async def fault(run: ClusterRun) -> str:
        await run.point(1 / 3)
        leader = await asyncio.to_thread(
            run.cluster.leader_of, run.stack.names.topology.ledger_queue
        )
        since = time.monotonic()
        await asyncio.to_thread(run.cluster.kill, leader)
        await run.wait_consumers(f"SIGKILL of {leader}", since)
        before = await run.stack.stored()
        stored = await ledgers_went_on(run.stack, before)
        queue = run.stack.names.topology.ledger_queue
        new_leader = await asyncio.to_thread(run.cluster.leader_of, queue)
        return (
            f"SIGKILL of {leader} (leading the ledger's queue; services on {run.connected}); "
            f"{new_leader} elected; the ledgers went on storing ({stored - before} events)"
        )

    return await on_cluster(ctx, "11 queue leader killed", Placement(0, 1), fault)


async def rolling_restart(ctx: Context) -> Row:
    """Each node stopped and started again in turn, the next once every node is back in the
    ledger's queue: the connected one first."""

    async def fault(run: ClusterRun) -> str:
        await run.point(0.05)
        queue = run.stack.names.topology.ledger_queue
        took = []
        for node in run.cluster.names:
            since = time.monotonic()
            await asyncio.to_thread(run.cluster.restart, node)
            await all_online(run.cluster, queue)
            took.append(time.monotonic() - since)
            await run.wait_consumers(f"the restart of {node}", since)
        return f"3 nodes restarted one after another ({', '.join(f'{t:.0f}s' for t in took)})"

    return await on_cluster(ctx, "12 rolling restart", Placement(0, 0), fault)


async def node_cut_off(ctx: Context) -> Row:
    """The node every service is connected to (and leading the queues) cut off from its clients
    by its fault proxy for a while; the node itself stays up and clustered."""
    cut_for_s = 10.0

    async def fault(run: ClusterRun) -> str:
        await run.point(1 / 3)
        since = time.monotonic()
        await asyncio.to_thread(run.cluster.cut_off, run.connected)
        await run.wait_consumers(f"cutting {run.connected} off", since)
        await asyncio.sleep(max(0.0, cut_for_s - (time.monotonic() - since)))  # the outage
        await asyncio.to_thread(run.cluster.restore, run.connected)
        return f"{run.connected} (connected, leading) cut off for {cut_for_s:.0f}s"

    return await on_cluster(ctx, "13 node cut off", Placement(0, 0), fault)
