"""The processes of the monitoring-cost stage that are not a service's own console script.

``python -m bench.pipeline_processes relay --schema S --ready FILE``: the services' outbox
relay loop (:meth:`chassis.outbox.OutboxRelay.run`) on schema ``S``'s outbox.

``python -m bench.pipeline_processes publish --schema S --exchange X --ready FILE``: the bare
publisher: the rows of schema ``S``'s outbox, loaded into memory, published pipelined
(persistent, mandatory, 1,000 confirms in flight) onto ``X``.

``python -m bench.pipeline_processes consume --schema S --queue Q --total N --ready FILE``: the
bare consumer of the ingest limit (batches as the ledger takes them, one ``INSERT … unnest``
and one multiple-ack per batch) into schema ``S``'s event store.

Each connects, then creates ``FILE``; ``relay`` and ``publish`` start working on SIGUSR1 (so
that start-up is outside the measured span); all stop on SIGTERM. :func:`helper_process` and
:func:`wait_ready` are how the stage starts them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from bench.bare_ingest import bare_ingest
from bench.common import Endpoints
from bench.publishing import publish_pipelined
from bench.stage_env import service_env
from bench.wire import WireEvent
from chassis.broker import connect
from chassis.database import create_pool
from chassis.lifecycle import stop_event_on_signals
from chassis.outbox import OutboxRelay
from contracts.topology import BrokerNames
from tests.harness.processes import ServiceProcess


@dataclass(frozen=True)
class PipelineContext:
    """What the monitoring-CPU stage's processes share: where, on what names, how many."""

    endpoints: Endpoints
    topology: BrokerNames
    source_schema: str
    events: int
    logs: Path
    postmaster: int


def helper_process(name: str, argv: list[str], ctx: PipelineContext, ready: Path) -> ServiceProcess:
    """``python -m bench.pipeline_processes <argv> --ready <ready>`` on ``ctx``'s names."""
    return ServiceProcess(
        name,
        [sys.executable, "-m", "bench.pipeline_processes", *argv, "--ready", str(ready)],
        service_env(ctx.endpoints, ctx.topology),
        ctx.logs,
    )


async def wait_ready(path: Path, process: ServiceProcess, timeout_s: float = 60) -> None:
    """Wait until ``process`` created ``path``; raise ``RuntimeError`` if it exits first."""
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(path.exists):
        if not process.running:
            raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{process.name} not ready:\n{process.log_tail()}")
        await asyncio.sleep(0.05)


def _go_event() -> asyncio.Event:
    go = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, go.set)
    return go


async def _until_stopped(stop: asyncio.Event, work: asyncio.Task[Any]) -> None:
    """Wait for SIGTERM (or the end of ``work``), then cancel ``work``; re-raise its error."""
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({stopped, work}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if work.done():
        work.result()
        await stop.wait()
        return
    work.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await work


async def relay(endpoints: Endpoints, schema: str, ready: Path) -> None:
    """Run the relay loop from SIGUSR1 to SIGTERM."""
    stop, go = stop_event_on_signals(), _go_event()
    pool = await create_pool(endpoints.database_url, schema, max_size=4)
    connection = await connect(endpoints.amqp_url, name="bench-cost-relay")
    try:
        outbox_relay = OutboxRelay(pool, connection)
        await asyncio.to_thread(ready.touch)
        await go.wait()
        await _until_stopped(stop, asyncio.create_task(outbox_relay.run()))
    finally:
        await connection.close()
        await pool.close()


async def _outbox_events(endpoints: Endpoints, schema: str) -> list[WireEvent]:
    pool = await create_pool(endpoints.database_url, schema, max_size=1)
    try:
        rows = await pool.fetch("SELECT routing_key, body, properties FROM outbox ORDER BY id")
    finally:
        await pool.close()
    events = []
    for row in rows:
        props = orjson.loads(row["properties"])
        events.append(
            WireEvent(
                props["message_id"],
                props["type"],
                row["routing_key"],
                row["body"],
                datetime.fromisoformat(props["timestamp"]),
            )
        )
    return events


async def publish(endpoints: Endpoints, schema: str, exchange: str, ready: Path) -> None:
    """Publish the outbox's rows once, from SIGUSR1; then wait for SIGTERM."""
    stop, go = stop_event_on_signals(), _go_event()
    events = await _outbox_events(endpoints, schema)
    connection = await connect(endpoints.amqp_url, name="bench-cost-publish")
    try:
        await asyncio.to_thread(ready.touch)
        await go.wait()
        await _until_stopped(
            stop, asyncio.create_task(publish_pipelined(connection, exchange, events))
        )
    finally:
        await connection.close()


async def consume(endpoints: Endpoints, schema: str, queue: str, total: int, ready: Path) -> None:
    """Consume ``total`` events into the event store; then wait for SIGTERM."""
    stop = stop_event_on_signals()
    pool = await create_pool(endpoints.database_url, schema, max_size=2)
    connection = await connect(endpoints.amqp_url, name="bench-cost-consume")
    try:
        await asyncio.to_thread(ready.touch)
        await _until_stopped(stop, asyncio.create_task(bare_ingest(connection, queue, pool, total)))
    finally:
        await connection.close()
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("relay", "publish", "consume"):
        command = commands.add_parser(name)
        command.add_argument("--schema", required=True)
        command.add_argument("--ready", type=Path, required=True)
    commands.choices["publish"].add_argument("--exchange", required=True)
    commands.choices["consume"].add_argument("--queue", required=True)
    commands.choices["consume"].add_argument("--total", type=int, required=True)
    args = parser.parse_args()
    endpoints = Endpoints.from_environment()
    if args.command == "relay":
        asyncio.run(relay(endpoints, args.schema, args.ready))
    elif args.command == "publish":
        asyncio.run(publish(endpoints, args.schema, args.exchange, args.ready))
    else:
        asyncio.run(consume(endpoints, args.schema, args.queue, args.total, args.ready))


if __name__ == "__main__":
    main()
