"""CPU time of whole processes, read from ``/proc/<pid>/stat`` (user + system), by group.

A :class:`CpuMeter` follows named groups of processes (a service, the broker's Erlang VM, the
whole Postgres tree) over a measured span. Each group's members are found again at every
sample, so a Postgres backend that starts during the span is counted from its first sample,
and one that exits keeps what it used up to its last sample (at most one sampling interval is
lost). A process that existed before the span counts only what it used during it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU seconds ``pid`` has used, or ``None`` once it is gone."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    # fields[0] is field 3 (state) of proc(5): utime is field 14, stime field 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _all_pids() -> list[int]:
    return [int(entry.name) for entry in PROC.iterdir() if entry.name.isdigit()]


def parent_of(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields is not None else None


def with_descendants(root: int) -> set[int]:
    """``root`` and every process below it (children, grandchildren, …)."""
    parents = {pid: parent_of(pid) for pid in _all_pids()}
    found = {root}
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in found and pid not in found:
                found.add(pid)
                grew = True
    return found


def processes_named(name: str) -> list[int]:
    """Pids whose command name (``/proc/<pid>/comm``) is ``name``."""
    pids = []
    for pid in _all_pids():
        with contextlib.suppress(OSError):
            if (PROC / str(pid) / "comm").read_text().strip() == name:
                pids.append(pid)
    return pids


def broker_pids() -> set[int]:
    """RabbitMQ's Erlang VM (``beam.smp``) and its helper processes.

    Raises ``RuntimeError`` when no ``beam.smp`` runs on this machine (a remote broker's CPU
    cannot be read from here).
    """
    roots = processes_named("beam.smp")
    if not roots:
        raise RuntimeError("no beam.smp process here: the broker's CPU cannot be read")
    return set().union(*(with_descendants(pid) for pid in roots))


async def postmaster_pid(database_url: str) -> int:
    """The Postgres server process: the parent of this connection's backend.

    Raises ``RuntimeError`` when that backend is not a process of this machine.
    """
    conn = await asyncpg.connect(database_url)
    try:
        backend = int(await conn.fetchval("SELECT pg_backend_pid()"))
        # Read while the connection is open: the backend exits with it.
        parent = parent_of(backend)
    finally:
        await conn.close()
    if parent is None:
        raise RuntimeError(f"Postgres backend {backend} is not a process here: remote server?")
    return parent


@dataclass
class _Group:
    members: Callable[[], Iterable[int]]
    first: dict[int, float] = field(default_factory=dict)
    last: dict[int, float] = field(default_factory=dict)

    def sample(self, at_start: bool) -> None:
        for pid in self.members():
            used = cpu_seconds(pid)
            if used is None:
                continue
            if pid not in self.first:
                self.first[pid] = used if at_start else 0.0
            self.last[pid] = used

    @property
    def seconds(self) -> float:
        return sum(self.last[pid] - self.first[pid] for pid in self.last)


class CpuMeter:
    """CPU seconds used by each group of processes while its ``async with`` block runs.

    ``groups`` maps a group's name to a function returning its pids (called at every sample).
    """

    def __init__(
        self, groups: Mapping[str, Callable[[], Iterable[int]]], interval_s: float = 0.25
    ) -> None:
        self._groups = {name: _Group(members) for name, members in groups.items()}
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def _sample(self, at_start: bool = False) -> None:
        for group in self._groups.values():
            group.sample(at_start)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            await asyncio.to_thread(self._sample)

    async def __aenter__(self) -> CpuMeter:
        await asyncio.to_thread(self._sample, True)
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.to_thread(self._sample)

    def seconds(self) -> dict[str, float]:
        """CPU seconds per group over the span (complete once the block has ended)."""
        return {name: group.seconds for name, group in self._groups.items()}
