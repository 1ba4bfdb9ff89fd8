"""The real console scripts as subprocesses, for end-to-end and fault tests.

Each process logs to a file of its own (shown when a test fails) and can be stopped politely
(SIGTERM) or killed (SIGKILL) at any moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

import aiohttp

from contracts.topology import BrokerNames

SCRIPTS = Path(sys.executable).parent


def service_env(database_url: str, amqp_url: str, topology: BrokerNames) -> dict[str, str]:
    """The variables every service reads to find this test's Postgres, RabbitMQ and broker
    names; a service's schema and its own settings come on top."""
    return {
        "DATABASE_URL": database_url,
        "AMQP_URL": amqp_url,
        "EVENTS_EXCHANGE": topology.exchange,
        "LEDGER_QUEUE": topology.ledger_queue,
        "NOTIFIER_QUEUE": topology.notifier_queue,
        "COMMANDS_QUEUE": topology.commands_queue,
    }


async def run_command(
    argv: Sequence[str], env: Mapping[str, str], cwd: Path | None = None, timeout_s: float = 60
) -> tuple[int, str, str]:
    """Run ``argv`` to its end with exactly ``env``; return its exit code, stdout and stderr.

    Raises ``TimeoutError`` if it has not ended within ``timeout_s``.
    """
    process = await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout_s)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


class ServiceProcess:
    """One service, started as its console script with its own environment."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log_dir: Path) -> None:
        self.name = name
        self.argv = [str(SCRIPTS / argv[0]), *argv[1:]]
        self.env = {**os.environ, **env}
        self.log_path = log_dir / f"{name}.log"
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0

    async def start(self) -> None:
        self.starts += 1
        log = self.log_path.open("ab")
        try:
            log.write(f"\n--- start #{self.starts}: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.process = await asyncio.create_subprocess_exec(
                *self.argv, env=self.env, stdout=log, stderr=log, stdin=asyncio.subprocess.DEVNULL
            )
        finally:
            log.close()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def kill(self) -> None:
        """SIGKILL: no cleanup, no drain, as a crash."""
        if self.running and self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()

    async def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM and wait; SIGKILL if it does not exit in time. Returns the exit code."""
        if not self.running or self.process is None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), timeout_s)
        except TimeoutError:
            await self.kill()
            return None

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


async def wait_http_ok(url: str, process: ServiceProcess, timeout_s: float = 30.0) -> None:
    """Poll ``url`` until it answers 2xx; fail with the process's log if it never does."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.monotonic() < deadline:
            if not process.running:
                raise AssertionError(f"{process.name} exited:\n{process.log_tail()}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(url) as response:
                    if response.status < 300:
                        return
            await asyncio.sleep(0.2)
    raise AssertionError(
        f"{process.name} not ready at {url} in {timeout_s}s:\n{process.log_tail()}"
    )


@contextlib.asynccontextmanager
async def running(*processes: ServiceProcess) -> AsyncIterator[tuple[ServiceProcess, ...]]:
    """Start the processes; stop every one of them at the end, whatever happened."""
    try:
        for process in processes:
            await process.start()
        yield processes
    finally:
        await asyncio.gather(*(p.stop() for p in processes), return_exceptions=True)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
