"""What several stages do the same way: the ledger's environment and process, the folder
their subprocesses log to, and rounds that each start on empty queues."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TypeVar

from aio_pika.abc import AbstractRobustConnection

from bench.common import Endpoints, ServiceProcess, log_directory, purge, service_env
from bench.rounds import interleaved
from chassis.broker import connect
from contracts.topology import BrokerNames

T = TypeVar("T")
U = TypeVar("U")

ADMIN_PASSWORD = "bench-password"
SESSION_SECRET = "bench-session-secret"


def stage_logs(log_dir: Path | None) -> AbstractContextManager[Path]:
    """``log_dir`` as given, or this run's fresh log folder when it is None."""
    return log_directory() if log_dir is None else contextlib.nullcontext(log_dir)


def ledger_env(
    endpoints: Endpoints, topology: BrokerNames, ledger_schema: str, **values: str
) -> dict[str, str]:
    """The environment of a ``job-ledger serve`` on ``ledger_schema`` with the bench's admin
    password and session secret (``values`` are added, as in ``service_env``)."""
    return service_env(
        endpoints,
        topology,
        ledger_schema=ledger_schema,
        admin_password=ADMIN_PASSWORD,
        session_secret=SESSION_SECRET,
        **values,
    )


def ledger_server(name: str, port: int, env: dict[str, str], logs: Path) -> ServiceProcess:
    """A ``job-ledger serve`` (not yet started) on 127.0.0.1:``port``."""
    argv = ["job-ledger", "serve", "--host", "127.0.0.1", "--port", str(port)]
    return ServiceProcess(name, argv, env, logs)


def _then_purge(
    connection: AbstractRobustConnection,
    measure: Callable[[int], Awaitable[T]],
    topology: BrokerNames,
) -> Callable[[int], Awaitable[T]]:
    """``measure``, followed by a purge of ``topology``'s ledger and notifier queues."""

    async def round_then_purge(index: int) -> T:
        sample = await measure(index)
        await purge(connection, topology.ledger_queue, topology.notifier_queue)
        return sample

    return round_then_purge


async def interleaved_on_empty_queues(
    amqp_url: str,
    connection_name: str,
    rounds: int,
    limit: tuple[Callable[[int], Awaitable[T]], BrokerNames],
    ours: tuple[Callable[[int], Awaitable[U]], BrokerNames],
) -> tuple[list[T], list[U]]:
    """``interleaved`` rounds of each side's measurement; after each, that side's topology's
    ledger and notifier queues are purged, so that no round inherits the last one's events.

    Returns both sides' samples; any error of a side propagates (the connection is closed)."""
    connection = await connect(amqp_url, name=connection_name)
    try:
        limit_side = _then_purge(connection, *limit)
        ours_side = _then_purge(connection, *ours)
        return await interleaved(rounds, limit_side, ours_side)
    finally:
        await connection.close()
