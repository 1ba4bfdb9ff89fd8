"""What the cluster scenarios do to and read from the three-node cluster, without blocking the
campaign's event loop (the fake Resend and Slack servers run on it): every call of the
cluster's command-line tools runs in a thread.

A consumer counts as back when the broker lists it on a channel that is alive now: a quorum
queue keeps the consumers of a node that died (suspected down) until that node returns, so
``list_consumers`` alone would count the dead ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
from collections import Counter
from dataclasses import dataclass

from tests.chaos.stack import Stack
from tests.cluster.cli import CliFailed
from tests.cluster.harness import RabbitCluster
from tests.harness.scratch import declare

BACK_WITHIN_S = 30.0
"""Every consumer of every service is attached again within this of a fault."""


@dataclass(frozen=True)
class Placement:
    """Where a scenario puts things: the node the stack's queues are declared through (so it
    leads them) and the node every service connects to first."""

    declare_on: int
    connect_to: int


async def live_consumers(cluster: RabbitCluster, queues: set[str]) -> Counter[str]:
    """Consumers per queue among ``queues`` whose channel is alive; empty while the cluster
    does not answer."""

    def read() -> Counter[str]:
        alive = {c["pid"] for c in cluster.ctl_json(["list_channels", "pid"])}
        consumers = cluster.ctl_json(["list_consumers", "queue_name", "channel_pid"])
        return Counter(
            c["queue_name"]
            for c in consumers
            if c["queue_name"] in queues and c["channel_pid"] in alive
        )

    try:
        return await asyncio.to_thread(read)
    except (CliFailed, subprocess.TimeoutExpired, json.JSONDecodeError, AssertionError):
        return Counter()


def expected_consumers(stack: Stack) -> dict[str, int]:
    """One consumer per instance on each service's queue (a standby worker's included)."""
    names = stack.names.topology
    count = stack.options.count
    return {
        names.ledger_queue: count("ledger"),
        names.notifier_queue: count("notifier"),
        names.commands_queue: count("worker"),
    }


async def consumers_back(
    cluster: RabbitCluster, stack: Stack, since: float, bound_s: float = BACK_WITHIN_S
) -> tuple[float | None, Counter[str]]:
    """Seconds from ``since`` (``time.monotonic()``) until every queue has its consumers on a
    live channel, or None when they are not all back ``bound_s`` after ``since``; and the
    consumers last seen."""
    expected = expected_consumers(stack)
    found: Counter[str] = Counter()
    while time.monotonic() - since <= bound_s:
        found = await live_consumers(cluster, set(expected))
        if all(found[q] >= n for q, n in expected.items()):
            return time.monotonic() - since, found
        await asyncio.sleep(0.5)
    return None, found


def services_url(cluster: RabbitCluster, first: int) -> str:
    """``AMQP_URL`` for the services: every node through its fault proxy, node ``first``
    (0-based) first, the others after it in turn."""
    urls = cluster.proxied_urls
    return ",".join(urls[first:] + urls[:first])


async def declare_through(cluster: RabbitCluster, stack: Stack, node: int) -> str:
    """Declare the stack's queues through node ``node`` (0-based), so that it leads them;
    returns the name of the node leading the ledger's queue."""
    await declare(cluster.amqp_urls[node], stack.names.topology)
    return await asyncio.to_thread(cluster.leader_of, stack.names.topology.ledger_queue)


async def all_online(cluster: RabbitCluster, queue: str, timeout_s: float = 60) -> None:
    """Wait until every node is an online member of quorum queue ``queue`` (a restarted node
    has caught up). Raises ``TimeoutError``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        # A node still booting does not answer: asked again until the deadline.
        with contextlib.suppress(CliFailed, subprocess.TimeoutExpired, json.JSONDecodeError):
            replicas = await asyncio.to_thread(cluster.replicas, queue)
            if sorted(replicas.online) == sorted(cluster.names):
                return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"{queue} not online on every node in {timeout_s}s")
