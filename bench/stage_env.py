"""What several stages do the same way, on :mod:`tests.harness`: scratch names with the bench's
prefix, a service's environment and the ledger's process, the folder their subprocesses log
to, and rounds that each start on empty queues."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TypeVar

from aio_pika.abc import AbstractRobustConnection

from bench.common import Endpoints
from bench.publishing import purge
from bench.rounds import interleaved
from chassis.broker import connect
from contracts.topology import BrokerNames
from tests.harness import scratch
from tests.harness.processes import ServiceProcess

T = TypeVar("T")
U = TypeVar("U")

ADMIN_PASSWORD = "bench-admin-password"
SESSION_SECRET = "bench-session-secret"


def scratch_schema(database_url: str, prefix: str) -> contextlib.AbstractAsyncContextManager[str]:
    """A schema ``bench_<prefix>_<id>`` of this run's, dropped on exit (see ``tests.harness``)."""
    return scratch.scratch_schema(database_url, f"bench_{prefix}")


def scratch_topology(
    amqp_url: str, prefix: str
) -> contextlib.AbstractAsyncContextManager[BrokerNames]:
    """Broker names ``bench.<prefix>.<id>.…`` of this run's, declared, deleted on exit."""
    return scratch.scratch_topology(amqp_url, f"bench.{prefix}")


def service_env(endpoints: Endpoints, topology: BrokerNames, **values: str) -> dict[str, str]:
    """The environment of a service process on this run's names, logging JSON at INFO
    (upper-cased ``values`` are added and win)."""
    return scratch.service_env(
        endpoints.database_url,
        endpoints.amqp_url,
        topology,
        **{"log_level": "INFO", "log_format": "json", **values},
    )


@contextlib.contextmanager
def log_directory() -> Iterator[Path]:
    """Where this run's subprocesses log (kept under var/bench when it exists, else a temp dir)."""
    base = Path("var/bench")
    if base.parent.is_dir():
        base.mkdir(exist_ok=True)
        yield Path(tempfile.mkdtemp(prefix="run-", dir=base))
    else:
        with tempfile.TemporaryDirectory(prefix="bench-") as path:
            yield Path(path)


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
