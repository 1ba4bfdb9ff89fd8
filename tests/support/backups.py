"""The backup and restore procedure of ``docs/operations.md``, as the tests perform it.

:class:`System` is the three services as their real console scripts, each on a schema of its
own (as deployed: ``ledger``, ``notifier``, ``recalc``, here with a test's prefix), the
recalculator scoring from a loopback Snapshot hub and the notifier writing emails to files.
:func:`back_up`, :func:`drop_schemas_with_psql`, :func:`restore` and :func:`rebuild` run the
machine's ``pg_dump``, ``psql`` and ``pg_restore`` and the real ``job-ledger rebuild``, with
exactly the arguments the document gives.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from contracts.topology import BrokerNames
from tests.harness.ports import ReservedPort
from tests.harness.processes import SCRIPTS, ServiceProcess, run_command, wait_http_ok
from tests.harness.scratch import service_env
from tests.support.broker import eventually
from tests.support.snapshot_hub import SnapshotHub

PASSWORD = "backup-restore-admin-password"
NEVER_DUE_SCHEDULE = "0 0 29 2 *"
"""A schedule with no slot in the watchdog's first look back (7 days), so no JobMissed row
appears on its own while a test compares the API's answers."""


@dataclass(frozen=True)
class Schemas:
    """The three services' schemas, in the order the document dumps them."""

    ledger: str
    notifier: str
    recalc: str

    @classmethod
    def with_prefix(cls, prefix: str) -> Schemas:
        return cls(f"{prefix}_ledger", f"{prefix}_notifier", f"{prefix}_recalc")

    def in_dump_order(self) -> list[str]:
        """Ledger first (the record), then the notifier, the recalculator last."""
        return [self.ledger, self.notifier, self.recalc]


def tool_env() -> dict[str, str]:
    """The environment the PostgreSQL client tools run with: the machine's PATH only."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


async def checked(argv: Sequence[str], env: dict[str, str]) -> str:
    """Run ``argv``; return its stdout. Raises ``AssertionError`` with its stderr if it fails."""
    code, out, err = await run_command(argv, env, timeout_s=120)
    assert code == 0, f"{' '.join(argv)} exited {code}: {err}"
    return out


async def back_up(database_url: str, schemas: Schemas, folder: Path) -> list[Path]:
    """``pg_dump`` each schema to ``<folder>/<schema>.dump`` (custom format) in dump order;
    return the files in that order."""
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    files = []
    for schema in schemas.in_dump_order():
        path = folder / f"{schema}.dump"
        await checked(
            [
                "pg_dump",
                f"--dbname={database_url}",
                f"--schema={schema}",
                "--format=custom",
                f"--file={path}",
            ],
            tool_env(),
        )
        files.append(path)
    return files


async def drop_schemas_with_psql(database_url: str, schemas: Schemas) -> None:
    """What the restore starts from: each schema dropped (``psql``, stopping on any error)."""
    for schema in schemas.in_dump_order():
        await checked(
            [
                "psql",
                f"--dbname={database_url}",
                "--set=ON_ERROR_STOP=1",
                f"--command=DROP SCHEMA IF EXISTS {schema} CASCADE",
            ],
            tool_env(),
        )


async def restore(
    database_url: str, dumps: Sequence[Path], *, use_list: Path | None = None
) -> None:
    """``pg_restore`` each dump in one transaction, stopping at the first error; ``use_list``
    restores only the entries of that list file (``pg_restore -L``) from a single dump."""
    for dump in dumps:
        selection = [f"--use-list={use_list}"] if use_list is not None else []
        await checked(
            [
                "pg_restore",
                f"--dbname={database_url}",
                "--single-transaction",
                "--exit-on-error",
                "--no-owner",
                *selection,
                str(dump),
            ],
            tool_env(),
        )


async def rebuild(env: dict[str, str]) -> tuple[int, str, str]:
    """``job-ledger rebuild`` with the ledger's environment: exit code, stdout, stderr."""
    return await run_command(
        [str(SCRIPTS / "job-ledger"), "rebuild"], {**os.environ, **env}, timeout_s=120
    )


class System:
    """The ledger, the notifier and the recalculator worker as processes on ``schemas``.

    ``start`` starts them and waits until each is ready; ``stop`` stops them with SIGTERM (each
    drains). The ledger's API answers :meth:`get`; :meth:`run_job` runs one job end to end.
    """

    def __init__(self, env: dict[str, str], log_dir: Path, ports: list[int]) -> None:
        self.env = env
        ledger_port, notifier_port, worker_port = ports
        self.api = f"http://127.0.0.1:{ledger_port}"
        self.ledger = ServiceProcess("job-ledger", ["job-ledger", "serve"], env, log_dir)
        self.notifier = ServiceProcess(
            "notifier", ["notifier", "serve", "--port", str(notifier_port)], env, log_dir
        )
        self.worker = ServiceProcess(
            "worker", ["recalculator", "worker"], {**env, "HEALTH_PORT": str(worker_port)}, log_dir
        )
        self._ready = {
            self.ledger: f"{self.api}/readyz",
            self.notifier: f"http://127.0.0.1:{notifier_port}/readyz",
            self.worker: f"http://127.0.0.1:{worker_port}/readyz",
        }

    async def start(self, **overrides: str) -> None:
        """Start the three services (``overrides`` added to the ledger's environment)."""
        self.ledger.env.update(overrides)
        for process, url in self._ready.items():
            await process.start()
            await wait_http_ok(url, process)

    async def stop(self) -> None:
        for process in (self.worker, self.notifier, self.ledger):
            assert await process.stop() in (0, None), process.log_tail()

    async def get(self, path: str) -> Any:
        headers = {"Authorization": f"Bearer {PASSWORD}"}
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.api + path, headers=headers) as response,
        ):
            assert response.status == 200, await response.text()
            return await response.json()

    async def status_of(self, path: str) -> int:
        """The HTTP status the API answers ``path`` with."""
        headers = {"Authorization": f"Bearer {PASSWORD}"}
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.api + path, headers=headers) as response,
        ):
            return response.status

    async def cli(self, *argv: str) -> str:
        """A console script with the services' environment; its stdout. Asserts exit 0."""
        return await checked([str(SCRIPTS / argv[0]), *argv[1:]], {**os.environ, **self.env})

    async def trigger(self) -> str:
        """``recalculator trigger --wait``: the accepted request's id."""
        out = await self.cli("recalculator", "trigger", "--wait", "30")
        request_id = out.splitlines()[0].strip()
        assert "accepted: job" in out, out
        return str(uuid.UUID(request_id))

    async def job_of(self, request_id: str) -> str:
        """The job the ledger says ``request_id`` started (waits for the answer to arrive)."""
        outcome = await eventually(
            lambda: self.get(f"/api/admin/run-requests/{request_id}"),
            lambda body: body["data"]["jobId"] is not None,
        )
        return str(outcome["data"]["jobId"])

    async def settled(self, job_id: str) -> Any:
        """The job's row once it finished, every event is in and its email is recorded (the
        runs here fail no DAO, so no Slack alert is due)."""

        def done(body: Any) -> bool:
            job = body["data"][0]
            emails = [n for n in job["notifications"] if n["channel"] == "email"]
            return bool(job["complete"]) and bool(emails)

        body = await eventually(
            lambda: self.get(f"/api/admin/job-logs?id={job_id}"), done, timeout_s=60
        )
        return body["data"][0]

    async def run_job(self) -> tuple[str, str]:
        """Trigger a run and wait until it settled; return ``(request_id, job_id)``."""
        request_id = await self.trigger()
        job_id = await self.job_of(request_id)
        await self.settled(job_id)
        return request_id, job_id

    async def answers(self, request_ids: Sequence[str]) -> dict[str, Any]:
        """What the API answers about everything: the history, each job's row, events and
        error groups, the statistics and each run request's outcome."""
        found: dict[str, Any] = {
            "job-logs": await self.get("/api/admin/job-logs?limit=100"),
            "job-stats": await self.get("/api/admin/job-stats"),
        }
        for job in found["job-logs"]["data"]:
            for path in (f"?id={job['id']}", f"/{job['id']}/events", f"/{job['id']}/errors"):
                found[f"job-logs{path}"] = await self.get(f"/api/admin/job-logs{path}")
        for request_id in request_ids:
            found[request_id] = await self.get(f"/api/admin/run-requests/{request_id}")
        return found


@contextlib.asynccontextmanager
async def system_on(
    database_url: str,
    amqp_url: str,
    topology: BrokerNames,
    schemas: Schemas,
    hub: SnapshotHub,
    folder: Path,
) -> AsyncIterator[System]:
    """A :class:`System` (not started) with the DAOs of ``hub``'s spaces imported; its ports
    are held until the block ends, its processes stopped then."""
    daos = folder / "daos.json"
    daos.write_text(
        json.dumps(
            [
                {"id": space.removesuffix(".eth"), "name": f"DAO {space}", "snapshot_space": space}
                for space in hub.spaces
            ]
        )
    )
    with ReservedPort() as ledger, ReservedPort() as notifier, ReservedPort() as worker:
        env = {
            **service_env(database_url, amqp_url, topology),
            "LEDGER_SCHEMA": schemas.ledger,
            "NOTIFIER_SCHEMA": schemas.notifier,
            "RECALC_SCHEMA": schemas.recalc,
            "LOG_FORMAT": "json",
            "ADMIN_PASSWORD": PASSWORD,
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": str(ledger.port),
            "JOB_SCHEDULE": NEVER_DUE_SCHEDULE,
            "WATCHDOG_INTERVAL": "1s",
            "WATCHDOG_SETTLE": "1s",
            "GOVERNANCE_SOURCE": "snapshot",
            "SNAPSHOT_HUB_URL": hub.url,
            "DAO_TIMEOUT": "30s",
            "DAO_RETRIES": "0",
            "EMAIL_TRANSPORT": "file",
            "EMAIL_OUTBOX_DIR": str(folder / "emails"),
            "CACHE_REVALIDATE_URL": "",
        }
        system = System(env, folder, [ledger.port, notifier.port, worker.port])
        await system.cli("recalculator", "daos", "import", str(daos))
        try:
            yield system
        finally:
            for process in (system.worker, system.notifier, system.ledger):
                await process.stop()
