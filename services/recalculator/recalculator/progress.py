"""What ``recalculator run`` shows: a progress bar on a terminal, always a summary at the end.

The bar shows DAOs done of total, failures, rate and ETA. Off a terminal (a container log)
there is no bar; the structured log lines tell the same story.
"""

from __future__ import annotations

from uuid import UUID

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from recalculator.daos import DaoRef
from recalculator.run import RunOutcome


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} DAOs/s" if speed else "– DAOs/s", style="cyan")


class TerminalProgress:
    """A rich progress bar when ``console`` is a terminal; does nothing otherwise."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self.failed = 0

    def started(self, job_id: UUID, total: int) -> None:
        if not self._console.is_terminal:
            return
        self._bar = Progress(
            TextColumn("[bold]scoring"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[red]{task.fields[failed]} failed"),
            _RateColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self._console,
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task("DAOs", total=total, failed=0)

    def dao_done(self, dao: DaoRef, ok: bool) -> None:
        if not ok:
            self.failed += 1
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, advance=1, failed=self.failed)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def summary(outcome: RunOutcome) -> str:
    """Returns the lines printed after a run, whatever its outcome. Pure."""
    if outcome.status == "refused":
        return f"refused: {outcome.message}; nothing was started"
    if outcome.finished is None:
        return outcome.message
    f = outcome.finished
    lines = [
        f"job {outcome.job_id} {f.status}: {f.daos_processed} of {f.daos_total} DAOs scored,"
        f" {f.daos_failed} failed, in {f.duration_ms / 1000:.1f}s;"
        f" cache {'revalidated' if f.cache_invalidated else 'not revalidated'}",
    ]
    if f.fatal_error:
        lines.append(f"fatal error: {f.fatal_error}")
    for failure in f.failures:
        lines.append(f"  {failure.dao_id} ({failure.dao_name}): {failure.error}")
    if f.daos_failed > len(f.failures):
        lines.append(f"  … and {f.daos_failed - len(f.failures)} more")
    return "\n".join(lines)
