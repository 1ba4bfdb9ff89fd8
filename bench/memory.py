"""A process's memory while a stage runs: its resident set, sampled from ``/proc``."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path


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
