"""A queue backlog: filling it, waiting until it is stored, and timing how fast it was.

Throughput is read from the event store itself: events stored after the first transaction
began, over the time from the first transaction's start to the last one's (``received_at``),
so neither process start-up nor the final commit counts, for any consumer alike.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass

import aio_pika
import asyncpg
from aio_pika.abc import AbstractRobustConnection

from bench.bare_ingest import BATCH
from bench.publishing import publish_pipelined, purge
from bench.wire import backlog
from contracts.topology import BrokerNames
from tests.harness.processes import ServiceProcess

MIN_EVENTS = 3 * BATCH  # several transactions on either side, so there is a span to time


@dataclass(frozen=True)
class Throughput:
    events: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


async def commit_span(pool: asyncpg.Pool) -> Throughput:
    """Events stored after the first transaction began, over the time from the first
    transaction's start to the last one's (the last batch is excluded from both)."""
    row = await pool.fetchrow(
        "SELECT min(received_at) AS first, max(received_at) AS last, count(*) AS total,"
        " count(*) FILTER (WHERE received_at = (SELECT max(received_at) FROM job_events))"
        " AS in_last FROM job_events WHERE sequence IS NOT NULL"
    )
    assert row is not None
    if row["total"] == 0 or row["first"] == row["last"]:
        # One transaction took the whole backlog: there is no span to time, so no rate.
        raise RuntimeError(
            f"{row['total']} events were stored in a single transaction; a backlog of at"
            f" least {MIN_EVENTS:,} events is needed to time the ingest"
        )
    return Throughput(
        int(row["total"]) - int(row["in_last"]), (row["last"] - row["first"]).total_seconds()
    )


async def stored(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM job_events WHERE sequence IS NOT NULL"))


async def fill_queue(
    connection: AbstractRobustConnection, topology: BrokerNames, events: int
) -> tuple[int, float]:
    """Publish a backlog of ``events`` (whole jobs of 1,000 events) onto the exchange.

    A broker restarted mid-way (another suite's fault test, say) leaves a partial backlog:
    it is purged and the backlog published again, up to three times in all.
    """
    for attempt in range(3):
        try:
            return await publish_pipelined(connection, topology.exchange, backlog(events))
        except (aio_pika.exceptions.AMQPError, RuntimeError, ConnectionError) as exc:
            if attempt == 2:
                raise
            print(f"[bench] refilling the backlog after {exc!r}", file=sys.stderr, flush=True)
            await _purge_when_back(connection, topology)
    raise AssertionError("unreachable")


async def _purge_when_back(connection: AbstractRobustConnection, topology: BrokerNames) -> None:
    """Purge the partial backlog once the broker answers again (within two minutes)."""
    deadline = time.monotonic() + 120
    while True:
        await asyncio.sleep(5)  # the robust connection reconnects meanwhile
        try:
            await purge(connection, topology.ledger_queue, topology.notifier_queue)
            return
        except (aio_pika.exceptions.AMQPError, RuntimeError, ConnectionError):
            if time.monotonic() > deadline:
                raise


async def wait_stored(
    pool: asyncpg.Pool, total: int, process: ServiceProcess | None, timeout_s: float
) -> None:
    """Wait until ``total`` sequenced events are stored; raise ``RuntimeError`` if they aren't."""
    deadline = time.monotonic() + timeout_s
    while (count := await stored(pool)) < total:
        if process is not None and not process.running:
            raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {count} of {total} events stored in {timeout_s:.0f}s")
        await asyncio.sleep(0.5 if total < 200_000 else 2.0)
