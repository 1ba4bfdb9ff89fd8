"""The real console scripts (``job-ledger``, ``notifier``, ``recalculator``) or ``python -m …``
as subprocesses, for tests, the chaos campaign and the benchmarks.

Each :class:`ServiceProcess` logs to a file of its own (its tail is what a failure shows), can
be started again after it stopped, and stopped politely (SIGTERM) or killed (SIGKILL) at any
moment. :func:`run_command` runs a one-shot command to its end.
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

SCRIPTS = Path(sys.executable).parent
"""Where the virtual environment's console scripts (and its ``python``) are."""


class NotReady(RuntimeError):
    """A service exited, or never answered its readiness URL in time (the message holds its log)."""


class ServiceProcess:
    """One program started with its own environment (on top of this process's), logging to
    ``<log_dir>/<name>.log``. ``argv[0]`` is a script of the virtual environment unless it is an
    absolute path (``sys.executable``, say)."""

    def __init__(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], log_dir: Path
    ) -> None:
        self.name = name
        program = argv[0]
        self.argv = [program if os.path.isabs(program) else str(SCRIPTS / program), *argv[1:]]
        self.env = {**os.environ, **env}
        self.log_path = log_dir / f"{name}.log"
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0

    async def start(self) -> None:
        """Start it (again), with a line in its log that says which start this is."""
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
    def pid(self) -> int:
        """The running process's id; raises ``RuntimeError`` before the first start."""
        if self.process is None:
            raise RuntimeError(f"{self.name} was not started")
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def wait(self, timeout_s: float) -> int:
        """Wait for it to exit; return the exit code. Raises ``TimeoutError``."""
        if self.process is None:
            raise RuntimeError(f"{self.name} was not started")
        return await asyncio.wait_for(self.process.wait(), timeout_s)

    async def kill(self) -> None:
        """SIGKILL: no cleanup, no drain, as a crash."""
        if self.running and self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()

    async def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM and wait; SIGKILL if it does not exit in time. Returns the exit code (None
        when it had to be killed or was never started)."""
        if not self.running or self.process is None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), timeout_s)
        except TimeoutError:
            await self.kill()
            return None

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of its log."""
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


async def wait_http_ok(
    url: str, process: ServiceProcess, timeout_s: float = 30.0, interval_s: float = 0.2
) -> None:
    """Poll ``url`` until it answers 2xx. Raises :class:`NotReady` with the process's log if
    the process exits first or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.monotonic() < deadline:
            if not process.running:
                raise NotReady(f"{process.name} exited:\n{process.log_tail()}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(url) as response:
                    if response.status < 300:
                        return
            await asyncio.sleep(interval_s)
    raise NotReady(f"{process.name} not ready at {url} in {timeout_s}s:\n{process.log_tail()}")


@contextlib.asynccontextmanager
async def started(
    process: ServiceProcess, stop_timeout_s: float = 20.0
) -> AsyncIterator[ServiceProcess]:
    """Start ``process``; stop it at the end, whatever happened."""
    await process.start()
    try:
        yield process
    finally:
        await process.stop(stop_timeout_s)


@contextlib.asynccontextmanager
async def running(
    *processes: ServiceProcess, stop_timeout_s: float = 15.0
) -> AsyncIterator[tuple[ServiceProcess, ...]]:
    """Start the processes in order; stop every one of them at the end, whatever happened."""
    try:
        for process in processes:
            await process.start()
        yield processes
    finally:
        await asyncio.gather(*(p.stop(stop_timeout_s) for p in processes), return_exceptions=True)


async def run_command(
    argv: Sequence[str], env: Mapping[str, str], cwd: Path | None = None, timeout_s: float = 60
) -> tuple[int, str, str]:
    """Run ``argv`` to its end with exactly ``env``; return its exit code, stdout and stderr.

    Raises ``TimeoutError`` (having killed it) if it has not ended within ``timeout_s``.
    """
    process = await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout_s)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()
