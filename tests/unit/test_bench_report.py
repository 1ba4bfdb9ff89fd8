"""The benchmark's verdict: a missed goal or a crashed stage fails the run, naming the stage;
the table at the top of the report is replaced and the dated history below it is kept."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

import pytest

import bench.__main__ as bench_main
from bench.common import Endpoints, Figure, StageResult
from bench.report import HISTORY_MARKER, gate, render, write_report
from bench.rounds import Spread, interleaved

HOST = [("cores (nproc)", "2")]


def _figure(stage: str, ours: float, limit: float, goal: float = 0.6) -> Figure:
    return Figure(stage, "events/s", "events/s", ours, limit, goal, goal_text="≥ 60%")


def test_a_run_where_every_goal_is_met_exits_zero() -> None:
    reported = Figure("big run", "s", "s", 30.0, 13.0, None, goal_text="(reported)")
    results = [StageResult("outbox relay", [_figure("outbox relay", 900, 1000), reported])]
    assert gate(results) == (0, [])


def test_a_missed_goal_exits_non_zero_naming_the_stage() -> None:
    results = [
        StageResult("outbox relay", [_figure("outbox relay", 900, 1000)]),
        StageResult("ledger ingest", [_figure("ledger ingest", 500, 1000)]),
    ]
    status, reasons = gate(results)
    assert status == 1
    assert reasons == ["goal missed: ledger ingest: events/s: 0.50 (≥ 60%)"]


def test_a_crashed_stage_exits_non_zero_naming_the_stage() -> None:
    results = [StageResult("cpu", error="RuntimeError: no beam.smp process here")]
    assert gate(results) == (1, ["stage crashed: cpu: RuntimeError: no beam.smp process here"])


def test_the_table_shows_a_crashed_stage_beside_the_measured_ones() -> None:
    results = [
        StageResult("outbox relay", [_figure("outbox relay", 600, 1000)]),
        StageResult("hub", error="RuntimeError: recalculator exited 2"),
    ]
    text = render(
        results, HOST, ["--only", "relay", "hub"], 60.0, datetime(2026, 12, 1, tzinfo=UTC)
    )
    assert (
        "| outbox relay | events/s | 600 events/s | 1,000 events/s | 0.60 | ≥ 60% | pass |" in text
    )
    assert "| hub | RuntimeError: recalculator exited 2 | — | — | — | — | **CRASHED** |" in text
    assert "2026-12-01 00:00 UTC" in text and "| cores (nproc) | 2 |" in text


def test_the_report_replaces_the_table_and_keeps_the_history(tmp_path: Path) -> None:
    path = tmp_path / "benchmarks.md"
    path.write_text(
        f"# Benchmarks\n\nold table\n\n{HISTORY_MARKER}\n\n## History\n\n- 2026-11-28: x\n"
    )
    write_report(path, "# Benchmarks\n\nnew table\n")
    text = path.read_text()
    assert "old table" not in text
    assert text.index("new table") < text.index(HISTORY_MARKER) < text.index("- 2026-11-28: x")


async def test_a_crashing_stage_is_reported_and_the_next_stage_still_runs() -> None:
    async def crashes() -> StageResult:
        raise RuntimeError("the broker went away\nwith a long log tail")

    async def measures() -> StageResult:
        return StageResult("ledger ingest", [_figure("ledger ingest", 700, 1000)])

    results = await bench_main.run_stages(
        [bench_main.Stage("relay", crashes), bench_main.Stage("ingest", measures)]
    )
    assert [(r.stage, r.error) for r in results] == [
        ("relay", "RuntimeError: the broker went away"),
        ("ledger ingest", None),
    ]


def test_main_exits_non_zero_and_names_the_stage_when_a_goal_is_missed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def missed() -> StageResult:
        return StageResult("ledger ingest", [_figure("ledger ingest", 100, 1000)])

    async def no_machine(endpoints: Endpoints) -> list[tuple[str, str]]:
        return HOST

    def one_stage(args: argparse.Namespace, endpoints: Endpoints) -> list[bench_main.Stage]:
        return [bench_main.Stage("ingest", missed)]

    monkeypatch.setattr(bench_main, "machine", no_machine)
    monkeypatch.setattr(bench_main, "plan", one_stage)
    output = tmp_path / "benchmarks.md"
    assert bench_main.main(["--only", "ingest", "--output", str(output)]) == 1
    assert "bench: goal missed: ledger ingest: events/s: 0.10" in capsys.readouterr().err
    assert "| ledger ingest | events/s | 100 events/s |" in output.read_text()


def test_a_spread_is_read_as_its_median_with_its_range() -> None:
    spread = Spread.of([5200.0, 4100.0, 4600.0])
    assert (spread.median, spread.low, spread.high) == (4600.0, 4100.0, 5200.0)
    assert spread.text() == "4,600 (4,100–5,200, n=3)"


async def test_rounds_alternate_the_limit_and_ours() -> None:
    order: list[str] = []

    async def limit(index: int) -> int:
        order.append(f"limit {index}")
        return index

    async def ours(index: int) -> int:
        order.append(f"ours {index}")
        return 10 + index

    assert await interleaved(3, limit, ours) == ([0, 1, 2], [10, 11, 12])
    assert order == ["limit 0", "ours 0", "limit 1", "ours 1", "limit 2", "ours 2"]


def test_the_repository_report_has_one_history_marker_for_make_bench_to_keep() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md").read_text()
    assert text.count(HISTORY_MARKER) == 1
