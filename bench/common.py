"""What every benchmark stage shares: where the services are, scratch names, results, processes.

Each stage measures the raw limit of its broker, database or server and then our code on the
same work, in the same run, and returns :class:`Figure` values. Scratch schemas and broker
names are unique per run (never the defaults) and removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import orjson
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection

from chassis.broker import declare_topology, publisher_channel
from chassis.settings import BaseServiceSettings, load_settings
from chassis.topology import Topology
from contracts.topology import BrokerNames

SCRIPTS = Path(sys.executable).parent
JOB_NAME = "weekly-gvs-recalculation"


@dataclass(frozen=True)
class Endpoints:
    """Where Postgres and RabbitMQ are (``DATABASE_URL``, ``AMQP_URL``, as for the services)."""

    database_url: str
    amqp_url: str

    @classmethod
    def from_environment(cls) -> Endpoints:
        """Read through the services' own settings base; raises ``SettingsError``."""
        settings = load_settings(BaseServiceSettings)
        return cls(settings.database_url, settings.amqp_url.get_secret_value())


@dataclass(frozen=True)
class Figure:
    """One row of the table: our figure beside the limit measured in the same run.

    ``goal`` is a ratio ours/limit: at least it when ``higher_is_better``, else at most it.
    Without a limit, ``passed`` must be given (an absolute goal such as a memory ceiling).
    """

    stage: str
    metric: str
    unit: str
    ours: float
    limit: float | None
    goal: float | None
    higher_is_better: bool = True
    goal_text: str = ""
    verdict: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.limit is None or self.limit == 0:
            return None
        return self.ours / self.limit

    @property
    def passed(self) -> bool | None:
        if self.verdict is not None:
            return self.verdict
        if self.ratio is None or self.goal is None:
            return None
        return self.ratio >= self.goal if self.higher_is_better else self.ratio <= self.goal


@dataclass
class StageResult:
    """What one stage measured: its figures and details worth printing below the table, or
    the error that stopped it."""

    stage: str
    figures: list[Figure] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    error: str | None = None
    """Why the stage stopped before measuring, when it did (its figures are then missing)."""


def unique_suffix() -> str:
    return uuid.uuid4().hex[:10]


@contextlib.asynccontextmanager
async def scratch_schema(database_url: str, prefix: str) -> AsyncIterator[str]:
    """A schema name unique to this run; the schema is dropped on exit (if it was made)."""
    name = f"bench_{prefix}_{unique_suffix()}"
    try:
        yield name
    finally:
        await drop_schema(database_url, name)


async def drop_schema(database_url: str, name: str, attempts: int = 10) -> None:
    """Drop schema ``name``, waiting out a Postgres restart (another suite's fault test)."""
    for attempt in range(attempts):
        try:
            conn = await asyncpg.connect(database_url)
        except (OSError, asyncpg.PostgresError):
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(3)
            continue
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
            return
        finally:
            await conn.close()


@contextlib.asynccontextmanager
async def scratch_topology(amqp_url: str, prefix: str) -> AsyncIterator[BrokerNames]:
    """Exchange and queue names unique to this run, declared; all deleted on exit."""
    suffix = unique_suffix()
    topology = BrokerNames(
        exchange=f"bench.{prefix}.{suffix}.events",
        ledger_queue=f"bench.{prefix}.{suffix}.job-ledger.events",
        notifier_queue=f"bench.{prefix}.{suffix}.notifier.events",
        commands_queue=f"bench.{prefix}.{suffix}.recalculator.commands",
    )
    connection = await aio_pika.connect(amqp_url)
    try:
        async with connection.channel() as channel:
            await declare_topology(channel, Topology.of(topology))
    finally:
        await connection.close()
    try:
        yield topology
    finally:
        # A fresh connection: the broker may have been restarted under the stage.
        await delete_topology(amqp_url, topology)


async def delete_topology(amqp_url: str, topology: BrokerNames) -> None:
    """Delete every queue (and dead-letter queue) and the exchange of ``topology``."""
    connection = await aio_pika.connect(amqp_url)
    try:
        for spec in Topology.of(topology).queues:
            for name in (spec.name, spec.dead_letter_queue):
                with contextlib.suppress(aio_pika.exceptions.AMQPError):
                    async with connection.channel() as channel:
                        await channel.queue_delete(name)
        with contextlib.suppress(aio_pika.exceptions.AMQPError):
            async with connection.channel() as channel:
                await channel.exchange_delete(topology.exchange)
    finally:
        await connection.close()


def service_env(endpoints: Endpoints, topology: BrokerNames, **values: str) -> dict[str, str]:
    """The environment of a service process on this run's names (upper-cased ``values`` win)."""
    env = {
        "DATABASE_URL": endpoints.database_url,
        "AMQP_URL": endpoints.amqp_url,
        "EVENTS_EXCHANGE": topology.exchange,
        "LEDGER_QUEUE": topology.ledger_queue,
        "NOTIFIER_QUEUE": topology.notifier_queue,
        "COMMANDS_QUEUE": topology.commands_queue,
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "json",
    }
    env.update({k.upper(): v for k, v in values.items()})
    return env


# --- synthetic events --------------------------------------------------------------------------


@dataclass(frozen=True)
class WireEvent:
    """An event as the recalculator's outbox would publish it: routing key, body, properties."""

    event_id: str
    event_type: str
    routing_key: str
    body: bytes
    occurred_at: datetime

    def message(self) -> aio_pika.Message:
        """The AMQP message with the properties the README's event contract lists (as
        ``encode_event`` sets them)."""
        return aio_pika.Message(
            body=self.body,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=self.event_id,
            type=self.event_type,
            timestamp=self.occurred_at,
            headers={"schema_version": 1},
        )

    def properties(self) -> dict[str, object]:
        """The outbox's ``properties`` column for this event (what ``enqueue`` stores)."""
        return {
            "content_type": "application/json",
            "message_id": self.event_id,
            "type": self.event_type,
            "timestamp": self.occurred_at.isoformat(),
            "headers": {"schema_version": 1},
        }


_KEYS = {
    "JobStarted": "job.started",
    "DaoProcessed": "dao.processed",
    "DaoFailed": "dao.failed",
    "JobFinished": "job.finished",
}


def _wire(job_id: str, sequence: int, event_type: str, payload: dict[str, object]) -> WireEvent:
    event_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    body = orjson.dumps(
        {
            "event_id": event_id,
            "event_type": event_type,
            "schema_version": 1,
            "job_id": job_id,
            "job_name": JOB_NAME,
            "sequence": sequence,
            "occurred_at": now.isoformat(),
            "payload": payload,
        }
    )
    return WireEvent(event_id, event_type, f"{JOB_NAME}.{_KEYS[event_type]}", body, now)


def job_events(daos: int, *, fail_every: int = 0) -> list[WireEvent]:
    """One complete job: JobStarted, a DaoProcessed (or every ``fail_every``-th a DaoFailed)
    per DAO, and JobFinished, with contiguous sequences; ``daos + 2`` events."""
    job_id = str(uuid.uuid4())
    events = [_wire(job_id, 0, "JobStarted", {"daos_total": daos, "trigger": "cron"})]
    failed = 0
    for i in range(daos):
        dao = {"dao_id": f"dao-{i:06d}", "dao_name": f"DAO number {i}"}
        if fail_every and i % fail_every == fail_every - 1:
            failed += 1
            events.append(
                _wire(job_id, i + 1, "DaoFailed", {**dao, "error": "HTTP 502", "attempts": 3})
            )
        else:
            payload = {**dao, "score": round(40 + (i % 600) / 10, 2), "duration_ms": 12}
            events.append(_wire(job_id, i + 1, "DaoProcessed", payload))
    finished = {
        "status": "completed",
        "daos_total": daos,
        "daos_processed": daos - failed,
        "daos_failed": failed,
        "duration_ms": 61_000,
        "cache_invalidated": True,
        "fatal_error": None,
        "failures": [],
    }
    events.append(_wire(job_id, daos + 1, "JobFinished", finished))
    return events


def backlog(total: int, per_job: int = 1000) -> Iterator[WireEvent]:
    """``total`` events made of whole jobs of ``per_job`` events each (the last one shorter),
    generated lazily so that a million events never sit in memory at once."""
    left = total
    while left > 0:
        size = min(per_job, left)
        yield from job_events(max(0, size - 2))
        left -= max(size, 2)


# --- broker ----------------------------------------------------------------------------------


async def publish_pipelined(
    connection: AbstractRobustConnection,
    exchange_name: str,
    events: Iterator[WireEvent] | Sequence[WireEvent],
    *,
    window: int = 1000,
) -> tuple[int, float]:
    """Publish every event (persistent, mandatory) with up to ``window`` confirms in flight.

    Returns (count, seconds). Raises the first publish error (a return, a nack).
    """
    channel = await publisher_channel(connection)
    try:
        exchange = await channel.get_exchange(exchange_name, ensure=False)
        started = time.perf_counter()
        count = await _publish_window(exchange, events, window)
        return count, time.perf_counter() - started
    finally:
        await channel.close()


async def publish_paced(
    connection: AbstractRobustConnection, exchange_name: str, events: list[WireEvent], pace: int
) -> None:
    """Publish ``events`` (persistent, mandatory, confirmed) at ``pace`` events/s, in 20
    confirmed chunks a second, or pipelined as fast as the broker allows when ``pace`` is 0."""
    if not pace:
        await publish_pipelined(connection, exchange_name, events)
        return
    channel = await publisher_channel(connection)
    try:
        exchange = await channel.get_exchange(exchange_name, ensure=False)
        chunk = max(1, pace // 20)
        began = time.perf_counter()
        for start in range(0, len(events), chunk):
            delay = began + start / pace - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await asyncio.gather(
                *(
                    exchange.publish(e.message(), e.routing_key, mandatory=True)
                    for e in events[start : start + chunk]
                )
            )
    finally:
        await channel.close()


async def _publish_window(
    exchange: AbstractExchange, events: Iterator[WireEvent] | Sequence[WireEvent], window: int
) -> int:
    # A semaphore, not asyncio.wait over the window: that re-arms every pending future per
    # message and costs more CPU than the publishing itself.
    slots = asyncio.Semaphore(window)
    pending: set[asyncio.Future[Any]] = set()
    errors: list[BaseException] = []

    def settled(future: asyncio.Future[Any]) -> None:
        slots.release()
        pending.discard(future)
        if not future.cancelled() and future.exception() is not None:
            errors.append(future.exception())  # type: ignore[arg-type]

    count = 0
    for event in events:
        await slots.acquire()
        if errors:
            break
        future = asyncio.ensure_future(
            exchange.publish(event.message(), event.routing_key, mandatory=True)
        )
        future.add_done_callback(settled)
        pending.add(future)
        count += 1
    if pending:
        await asyncio.gather(*list(pending), return_exceptions=True)
    if errors:
        raise errors[0]
    return count


async def queue_depth(channel: AbstractChannel, name: str) -> int:
    """Messages ready on queue ``name`` (not counting unacked ones)."""
    queue = await channel.declare_queue(name, passive=True)
    return int(queue.declaration_result.message_count or 0)


async def purge(connection: AbstractRobustConnection, *names: str) -> None:
    async with connection.channel() as channel:
        for name in names:
            queue = await channel.get_queue(name, ensure=False)
            await queue.purge()


# --- processes -------------------------------------------------------------------------------


class ServiceProcess:
    """A console script (``job-ledger``, ``notifier``, ``recalculator``) or ``python -m …``
    as a subprocess, logging to a file of its own."""

    def __init__(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], log_dir: Path
    ) -> None:
        self.name = name
        program = argv[0]
        self.argv = [program if program == sys.executable else str(SCRIPTS / program), *argv[1:]]
        self.env = {**os.environ, **env}
        self.log_path = log_dir / f"{name}.log"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        log = self.log_path.open("ab")
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv, env=self.env, stdout=log, stderr=log, stdin=asyncio.subprocess.DEVNULL
            )
        finally:
            log.close()

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"{self.name} was not started")
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def wait(self, timeout_s: float) -> int:
        """Wait for the exit; return the exit code. Raises ``TimeoutError``."""
        if self.process is None:
            raise RuntimeError(f"{self.name} was not started")
        return await asyncio.wait_for(self.process.wait(), timeout_s)

    async def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), timeout_s)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@contextlib.asynccontextmanager
async def started(process: ServiceProcess) -> AsyncIterator[ServiceProcess]:
    """Start ``process`` and stop it on exit, whatever happened."""
    await process.start()
    try:
        yield process
    finally:
        await process.stop()


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_until_http_ok(url: str, process: ServiceProcess, timeout_s: float = 60.0) -> None:
    """Poll ``url`` until it answers 2xx; raise ``RuntimeError`` with the process's log if not."""
    import aiohttp

    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.monotonic() < deadline:
            if not process.running:
                raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(url) as response:
                    if response.status < 300:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{process.name} not ready at {url}:\n{process.log_tail()}")


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` from /proc (0 once the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return 0


class RssSampler:
    """Samples a process's RSS every ``interval_s`` while its block runs."""

    def __init__(self, pid: int, interval_s: float = 0.5) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.samples: list[tuple[float, int]] = []
        self._task: asyncio.Task[None] | None = None
        self._started = 0.0

    async def _run(self) -> None:
        while True:
            value = await asyncio.to_thread(rss_bytes, self.pid)
            if value:
                self.samples.append((time.monotonic() - self._started, value))
            await asyncio.sleep(self.interval_s)

    async def __aenter__(self) -> RssSampler:
        self._started = time.monotonic()
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def peak(self) -> int:
        return max((v for _, v in self.samples), default=0)

    def quarter_peaks(self) -> list[int]:
        """Peak RSS in each quarter of the sampled time (to show whether memory stays flat)."""
        if not self.samples:
            return []
        end = self.samples[-1][0] or 1.0
        quarters = [0, 0, 0, 0]
        for at, value in self.samples:
            index = min(3, int(4 * at / end))
            quarters[index] = max(quarters[index], value)
        return quarters


def mb(value: float) -> float:
    return value / 1_000_000


def stage_cli(
    doc: str | None,
    run: Callable[..., Coroutine[Any, Any, StageResult]],
    check: Callable[..., None] | None = None,
    **sizes: int,
) -> None:
    """Run one stage from the command line (``python -m bench.<stage> --<size> N …``).

    ``sizes`` are the stage's size arguments with their defaults, passed to ``run`` (and first
    to ``check``, whose ``ValueError`` is a usage error) by name. Prints the stage's details;
    ``python -m bench`` runs every stage and writes the table.
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else "")
    for name, default in sizes.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=default)
    args = vars(parser.parse_args())
    if check is not None:
        try:
            check(**args)
        except ValueError as exc:
            parser.error(str(exc))
    outcome = asyncio.run(run(Endpoints.from_environment(), **args))
    print("\n".join(outcome.details))
