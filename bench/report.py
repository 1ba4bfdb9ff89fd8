"""The benchmark report: the table of figures, the machine, and the exit status a gate reads.

The table at the top of ``docs/benchmarks.md`` is written here and only here; what follows the
history marker in the existing file is kept as it is (dated history, written by people).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from bench.common import Figure, StageResult

HISTORY_MARKER = "<!-- everything below is kept by python -m bench -->"

GOAL_MISSED = 1
"""The exit status when a figure missed its goal or a stage crashed."""


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit in {"events/s", "req/s"}:
        return f"{value:,.0f} {unit}"
    if unit in {"s", "ms", "CPU-ms/event"}:
        return f"{value:,.2f} {unit}" if value < 10 else f"{value:,.1f} {unit}"
    return f"{value:,.0f} {unit}"


def _verdict(figure: Figure) -> str:
    if figure.passed is None:
        return "—"
    return "pass" if figure.passed else "**FAIL**"


def table(results: list[StageResult]) -> list[str]:
    """The Markdown table: one row per figure, one **CRASHED** row per stage that crashed."""
    lines = [
        "| stage | measure | ours | limit (same run) | ratio | goal | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in results:
        for f in result.figures:
            ratio = f"{f.ratio:.2f}" if f.ratio is not None else "—"
            ours = _number(f.ours, f.unit)
            if f.note:
                ours += f" ({f.note})"
            lines.append(
                f"| {f.stage} | {f.metric} | {ours} | {_number(f.limit, f.unit)} | {ratio}"
                f" | {f.goal_text} | {_verdict(f)} |"
            )
        if result.error is not None:
            lines.append(f"| {result.stage} | {result.error} | — | — | — | — | **CRASHED** |")
    return lines


def render(
    results: list[StageResult],
    host: list[tuple[str, str]],
    argv: list[str],
    seconds: float,
    at: datetime,
) -> str:
    """The generated part of ``docs/benchmarks.md``: header, table, machine, details."""
    lines = [
        "# Benchmarks",
        "",
        f"Current measurement: {at:%Y-%m-%d %H:%M} UTC, `python -m bench {' '.join(argv)}`,"
        f" {seconds / 60:.1f} min, on the machine below. Written by `python -m bench`"
        " (`make bench`); this table is replaced by each run. Every limit was measured in the"
        " same run as our figure, on the same broker and database, in interleaved rounds where"
        " the figure says so, so the ratio is what to read on a shared, noisy machine.",
        "",
        *table(results),
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in host),
        "",
        "## Details",
        "",
        *(f"- {line}" for r in results for line in r.details),
        "",
    ]
    return "\n".join(lines)


def kept_history(path: Path) -> str:
    """Everything from the history marker on in the existing report ("" when there is none)."""
    if not path.exists():
        return ""
    text = path.read_text()
    at = text.find(HISTORY_MARKER)
    return text[at:] if at >= 0 else ""


def write_report(path: Path, generated: str) -> None:
    """Replace the generated part of ``path`` with ``generated``, keeping the history."""
    history = kept_history(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(generated + ("\n" + history if history else ""))


def gate(results: list[StageResult]) -> tuple[int, list[str]]:
    """The exit status of a run and one line per reason: 0 when every goal was met and every
    stage ran to the end, else :data:`GOAL_MISSED` with the stage named in each line."""
    reasons = [f"stage crashed: {r.stage}: {r.error}" for r in results if r.error is not None]
    for result in results:
        for f in result.figures:
            if f.passed is False:
                ratio = f"{f.ratio:.2f}" if f.ratio is not None else _number(f.ours, f.unit)
                reasons.append(f"goal missed: {f.stage}: {f.metric}: {ratio} ({f.goal_text})")
    return (GOAL_MISSED if reasons else 0), reasons
