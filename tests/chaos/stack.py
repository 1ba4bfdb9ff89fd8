"""The whole stack as processes, on names of its own: the campaign's unit of isolation.

A :class:`Stack` owns three Postgres schemas and one set of broker names that nobody else
uses (``chaos_<id>_*``, ``chaos.<id>.*``), so a campaign never touches the demo's data or
another test's, and drops them all when it closes. It writes a DAO registry and a matching
governance file (the ``file`` source), imports the registry, and runs the real console
scripts (``job-ledger serve``, ``notifier serve``, ``recalculator worker``) with fake Resend
and Slack servers on loopback. Each service's ``DATABASE_URL`` / ``AMQP_URL`` can be pointed
at a proxy, to fault one link at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from pathlib import Path
from types import TracebackType
from typing import Self

import aio_pika
import asyncpg

from tests.chaos.names import SCRIPTS, Names, Service, StackOptions, instance_names, service_of
from tests.chaos.providers import CountingResend, CountingSlack
from tests.chaos.runs import ExpectedRun, ExpectedStatus
from tests.chaos.tap import ExchangeTap
from tests.harness.ports import ReservedPort
from tests.harness.processes import SCRIPTS as SCRIPT_DIR
from tests.harness.processes import ServiceProcess, run_command, wait_http_ok
from tests.harness.scratch import drop_schemas, remove_topology, service_env
from tests.support.broker import eventually

PASSWORD = "chaos-admin-password-0123456789"
RESEND_KEY = "re_chaos_key"
REPOSITORY = Path(__file__).resolve().parents[2]

# Variables a developer's shell may hold that would change what the services do.
_SCRUBBED = (
    "DATABASE_URL AMQP_URL EVENTS_EXCHANGE LEDGER_QUEUE NOTIFIER_QUEUE COMMANDS_QUEUE "
    "RECALC_SCHEMA LEDGER_SCHEMA NOTIFIER_SCHEMA RESEND_API_KEY RESEND_API_URL SLACK_WEBHOOK_URL "
    "EMAIL_TRANSPORT CACHE_REVALIDATE_URL GOVERNANCE_SOURCE GOVERNANCE_DATA ADMIN_PASSWORD "
    "JOB_STALE_AFTER WATCHDOG_INTERVAL HEALTH_PORT HTTP_PORT"
).split()


class Stack:
    """The three services on their own names; ``async with`` creates and removes it all."""

    def __init__(
        self,
        work: Path,
        database_url: str,
        amqp_url: str,
        dataset: tuple[Path, Path],
        options: StackOptions | None = None,
    ) -> None:
        self.names = Names.fresh()
        self.work = work / self.names.run_id
        self.database_url = database_url
        self.amqp_url = amqp_url
        self.daos_path, self.governance_path = dataset
        self.options = options or StackOptions()
        self.resend = CountingResend(RESEND_KEY)
        self.slack = CountingSlack()
        self.instances = [
            name for s in SCRIPTS for name in instance_names(s, self.options.count(s))
        ]
        """Every process of the stack by name (``ledger``, ``ledger-2``…, see
        :attr:`StackOptions.instances`)."""
        self._reserved = {name: ReservedPort() for name in self.instances}
        self.ports: dict[str, int] = {s: r.port for s, r in self._reserved.items()}
        """Each instance's HTTP port, held for it from here to the end, across its restarts."""
        self.processes: dict[str, ServiceProcess] = {}
        self.pool: asyncpg.Pool | None = None
        self.tap = ExchangeTap(amqp_url, self.names.topology)
        self.expected: list[ExpectedRun] = []
        """Every run this stack was asked for, in order, with how it must end."""
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Self:
        self.work.mkdir(parents=True, exist_ok=True)
        await self._stack.enter_async_context(self.resend)
        await self._stack.enter_async_context(self.slack)
        self.pool = await asyncpg.create_pool(self.database_url, min_size=1, max_size=4)
        await self.tap.declare()
        for name in self.instances:
            service = service_of(name)
            argv = [*SCRIPTS[service]]
            if service in ("ledger", "notifier"):
                argv += ["--port", str(self.ports[name])]
            if mutant := self.options.mutants.get(service):
                argv = ["python", "-m", "tests.chaos.mutants", mutant, *argv]
            self.processes[name] = ServiceProcess(name, argv, self.env(service, name), self.work)
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await asyncio.gather(
                *(p.stop() for p in self.processes.values()), return_exceptions=True
            )
            await self._stack.aclose()
        finally:
            for reserved in self._reserved.values():
                reserved.close()
            await self.remove()

    async def remove(self) -> None:
        """Drop the schemas, the queues and the exchange. Idempotent."""
        if self.pool is not None:
            await self.pool.close()
            self.pool = None
            schemas = (self.names.recalc_schema, self.names.ledger_schema)
            with contextlib.suppress(asyncpg.PostgresError, OSError):
                await drop_schemas(self.database_url, *schemas, self.names.notifier_schema)
        await self.tap.delete()
        with contextlib.suppress(aio_pika.exceptions.AMQPError, OSError):
            await remove_topology(self.amqp_url, self.names.topology)

    def env(self, service: Service, instance: str | None = None) -> dict[str, str]:
        """The exact environment ``service`` (its ``instance``, the first by default) runs
        with (the shell's settings scrubbed)."""
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
        env |= service_env(
            self.options.database_urls.get(service, self.database_url),
            self.options.amqp_urls.get(service, self.amqp_url),
            self.names.topology,
        )
        env.update(
            RECALC_SCHEMA=self.names.recalc_schema,
            LEDGER_SCHEMA=self.names.ledger_schema,
            NOTIFIER_SCHEMA=self.names.notifier_schema,
            LOG_FORMAT="json",
            LOG_LEVEL="INFO",
            CONNECT_TIMEOUT="30s",
            # A yearly slot that has long passed: no JobMissed noise in a fresh schema.
            JOB_SCHEDULE="0 0 1 1 *",
            JOB_GRACE="1h",
            ADMIN_PASSWORD=PASSWORD,
            GOVERNANCE_SOURCE="file",
            GOVERNANCE_DATA=str(self.governance_path),
            DAO_CONCURRENCY="16",
            DAO_RETRIES="0",
            RESEND_API_KEY=RESEND_KEY,
            RESEND_API_URL=self.resend.url,
            SLACK_WEBHOOK_URL=self.slack.webhook_url,
            EMAIL_TRANSPORT="resend",
            NOTIFY_TIMEOUT="2s",
            NOTIFY_BACKOFF_MAX="1s",
            NOTIFY_RESUME_INTERVAL="1s",
            HEALTH_HOST="127.0.0.1",
            HEALTH_PORT=str(self.ports[instance or service]),
            SHUTDOWN_GRACE="5s",
        )
        if service in self.options.mutants:
            env["PYTHONPATH"] = str(REPOSITORY)  # python -m tests.chaos.mutants from anywhere
        env.update(self.options.env.get(service, {}))
        return env

    # --- processes --------------------------------------------------------------------

    def url(self, instance: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[instance]}{path}"

    async def start(self, *instances: str, ready: bool = True) -> None:
        """Start each instance (a service's name is its first) again, and wait for
        ``/readyz`` when ``ready``."""
        for name in instances:
            await self.processes[name].start()
        if ready:
            for name in instances:
                await wait_http_ok(self.url(name, "/readyz"), self.processes[name], timeout_s=60)

    async def kill(self, instance: str) -> None:
        await self.processes[instance].kill()

    async def cli(
        self, service: Service, *args: str, timeout_s: float = 180
    ) -> tuple[int, str, str]:
        """Run a one-shot command of ``service``'s script; returns (exit code, stdout, stderr)."""
        argv = [str(SCRIPT_DIR / SCRIPTS[service][0]), *args]
        return await run_command(argv, self.env(service), timeout_s=timeout_s)

    async def import_daos(self) -> None:
        """``recalculator daos import`` of the stack's registry; raises on a non-zero exit."""
        code, out, err = await self.cli("worker", "daos", "import", str(self.daos_path))
        if code != 0:
            raise RuntimeError(f"daos import failed ({code}): {out}{err}")

    async def trigger(
        self, dao_ids: list[str] | None = None, expect: ExpectedStatus = "completed"
    ) -> uuid.UUID:
        """``recalculator trigger`` (of ``dao_ids`` only, when given) of a run that must end
        ``expect`` (:attr:`expected`); returns the request id it printed. Raises
        ``RuntimeError`` on a non-zero exit."""
        daos = [arg for dao in dao_ids or [] for arg in ("--dao", dao)]
        code, out, err = await self.cli("worker", "trigger", "--trigger", "manual", *daos)
        if code != 0:
            raise RuntimeError(f"trigger failed ({code}): {err}")
        asked = frozenset(dao_ids) if dao_ids else self.registry()
        self.expected.append(ExpectedRun(asked, expect))
        return uuid.UUID(out.strip().splitlines()[-1])

    def registry(self) -> frozenset[str]:
        """The ids of the stack's DAOs (all active): what a run of all DAOs covers."""
        return frozenset(str(d["id"]) for d in json.loads(self.daos_path.read_text()))

    # --- reading the stack's own tables ------------------------------------------------

    async def scalar(self, query: str, *args: object) -> int:
        """One integer from a query; ``{recalc}``, ``{ledger}``, ``{notifier}`` are the
        stack's schemas. Returns -1 while the database cannot answer (a restart)."""
        assert self.pool is not None
        sql = query.format(
            recalc=f'"{self.names.recalc_schema}"',
            ledger=f'"{self.names.ledger_schema}"',
            notifier=f'"{self.names.notifier_schema}"',
        )
        try:
            return int(await self.pool.fetchval(sql, *args) or 0)
        except (
            asyncpg.PostgresError,
            OSError,
            asyncpg.InterfaceError,
            asyncpg.InternalClientError,
        ):
            return -1

    async def wait_for(self, query: str, accept: int, timeout_s: float) -> int:
        """Poll ``query`` until it returns ``accept``; AssertionError with the last value."""
        return await eventually(
            lambda: self.scalar(query), lambda n: n == accept, timeout_s, interval_s=0.5
        )

    async def text(self, query: str, *args: object) -> str | None:
        """One value as text (None for no row or while the database cannot answer)."""
        assert self.pool is not None
        sql = query.format(
            recalc=f'"{self.names.recalc_schema}"', ledger=f'"{self.names.ledger_schema}"'
        )
        try:
            value = await self.pool.fetchval(sql, *args)
        except (
            asyncpg.PostgresError,
            OSError,
            asyncpg.InterfaceError,
            asyncpg.InternalClientError,
        ):
            return None
        return None if value is None else str(value)

    async def jobs_finished(self) -> int:
        return await self.scalar("SELECT count(*) FROM {recalc}.jobs WHERE status <> 'running'")

    async def stored(self) -> int:
        return await self.scalar("SELECT count(*) FROM {ledger}.job_events")
