"""``python -m bench``: run every stage, print the table and write ``docs/benchmarks.md``.

Each stage measures its raw limit and our code in the same run. The machine and the versions
of what was measured are written beside the table. Anything below the history marker in an
existing ``docs/benchmarks.md`` (what was changed to reach the goals) is kept.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import os
import platform
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import asyncpg

from bench import alert_latency, big_run, history_api, ledger_ingest, outbox_relay
from bench.common import Endpoints, Figure, StageResult
from chassis.settings import SettingsError

HISTORY_MARKER = "<!-- everything below is kept by python -m bench -->"
STAGES = ("relay", "ingest", "api", "alert", "big")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


async def machine(endpoints: Endpoints) -> list[tuple[str, str]]:
    """What the figures were measured on: cores, memory, CPU, and the versions that matter."""
    connection = await aio_pika.connect(endpoints.amqp_url)
    try:
        props = connection.transport.connection.server_properties if connection.transport else {}
        rabbit = props.get("version", "?")
        rabbitmq = rabbit.decode() if isinstance(rabbit, bytes) else str(rabbit)
    finally:
        await connection.close()
    conn = await asyncpg.connect(endpoints.database_url)
    try:
        postgres = str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()
    load = os.getloadavg()[0]
    return [
        ("cores (nproc)", str(os.cpu_count())),
        ("memory", f"{_memory_gib():.1f} GiB"),
        ("CPU", _cpu_model()),
        ("load average at start (1 min)", f"{load:.2f}"),
        ("Python", platform.python_version()),
        ("RabbitMQ", rabbitmq),
        ("PostgreSQL", postgres),
        ("aio-pika", importlib.metadata.version("aio-pika")),
        ("asyncpg", importlib.metadata.version("asyncpg")),
    ]


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit in {"events/s", "req/s"}:
        return f"{value:,.0f} {unit}"
    if unit == "s":
        return f"{value:,.1f} s"
    if unit == "ms":
        return f"{value:,.1f} ms"
    return f"{value:,.0f} {unit}"


def _verdict(figure: Figure) -> str:
    if figure.passed is None:
        return "—"
    return "pass" if figure.passed else "**FAIL**"


def table(figures: list[Figure]) -> list[str]:
    lines = [
        "| stage | measure | ours | limit (same run) | ratio | goal | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        ratio = f"{f.ratio:.2f}" if f.ratio is not None else "—"
        ours = _number(f.ours, f.unit)
        if f.note:
            ours += f" ({f.note})"
        lines.append(
            f"| {f.stage} | {f.metric} | {ours} | {_number(f.limit, f.unit)} | {ratio}"
            f" | {f.goal_text} | {_verdict(f)} |"
        )
    return lines


def render(
    results: list[StageResult], host: list[tuple[str, str]], argv: list[str], seconds: float
) -> str:
    figures = [f for r in results for f in r.figures]
    failed = [
        f"| {r.stage} | {r.details[-1]} | — | — | — | — | **FAILED** |"
        for r in results
        if not r.figures and r.details
    ]
    lines = [
        "# Benchmarks",
        "",
        f"Last run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, `python -m bench {' '.join(argv)}`,"
        f" {seconds / 60:.1f} min. Written by `python -m bench` (`make bench`); every limit was"
        " measured in the same run as our figure, on the same broker and database, so the"
        " ratio is what to read on a shared, noisy machine.",
        "",
        *table(figures),
        *failed,
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


def _kept_history(path: Path) -> str:
    if not path.exists():
        return ""
    text = path.read_text()
    at = text.find(HISTORY_MARKER)
    return text[at:] if at >= 0 else ""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=STAGES, help="run only these stages")
    parser.add_argument(
        "--events",
        type=int,
        default=outbox_relay.DEFAULT_EVENTS,
        help="outbox relay and ledger ingest size (100,000)",
    )
    parser.add_argument(
        "--backlog-events",
        type=int,
        default=ledger_ingest.DEFAULT_BACKLOG,
        help="backlog catch-up size (1,000,000; 0 skips it)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=history_api.DEFAULT_JOBS,
        help="jobs in job_logs for the history API (100,000)",
    )
    parser.add_argument(
        "--api-seconds",
        type=int,
        default=history_api.DEFAULT_SECONDS,
        help="wrk duration per server (10)",
    )
    parser.add_argument(
        "--alerts",
        type=int,
        default=alert_latency.DEFAULT_JOBS,
        help="JobFinished events for the alert latency (200)",
    )
    parser.add_argument(
        "--daos", type=int, default=big_run.DEFAULT_DAOS, help="DAOs in the big run (20,000)"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("docs/benchmarks.md"),
        help="where to write the table ('-' for nowhere)",
    )
    return parser


async def run_all(args: argparse.Namespace, endpoints: Endpoints) -> list[StageResult]:
    chosen = set(args.only or STAGES)
    plan: list[tuple[str, Callable[[], Awaitable[StageResult]]]] = [
        ("relay", lambda: outbox_relay.run(endpoints, args.events)),
        ("ingest", lambda: ledger_ingest.run(endpoints, args.events, args.backlog_events)),
        ("api", lambda: history_api.run(endpoints, args.jobs, args.api_seconds)),
        ("alert", lambda: alert_latency.run(endpoints, args.alerts)),
        ("big", lambda: big_run.run(endpoints, args.daos)),
    ]
    results = []
    for name, stage in plan:
        if name not in chosen:
            continue
        began = time.monotonic()
        print(f"[bench] {name} …", file=sys.stderr, flush=True)
        try:
            result = await stage()
        except Exception as exc:  # recorded in the table; the other stages still run
            # One stage's failure (a service restarted under it, say) is reported in the
            # table; the other stages still run.
            result = StageResult(name, details=[f"{name}: FAILED: {type(exc).__name__}: {exc}"])
        for line in result.details:
            print(f"[bench] {line} ({time.monotonic() - began:.0f}s)", file=sys.stderr, flush=True)
        results.append(result)
    return results


async def _measure(
    args: argparse.Namespace, endpoints: Endpoints
) -> tuple[list[tuple[str, str]], list[StageResult]]:
    # SIGTERM cancels the run like Ctrl-C does, so every stage removes its scratch schemas,
    # queues and processes on the way out.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    host = await machine(endpoints)
    return host, await run_all(args, endpoints)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        ledger_ingest.check_sizes(args.events, args.backlog_events)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        endpoints = Endpoints.from_environment()
    except SettingsError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    began = time.monotonic()
    host, results = asyncio.run(_measure(args, endpoints))
    text = render(
        results, host, list(sys.argv[1:] if argv is None else argv), time.monotonic() - began
    )
    print(text)
    if str(args.output) != "-":
        history = _kept_history(args.output)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + ("\n" + history if history else ""))
    failed = [f for r in results for f in r.figures if f.passed is False]
    if failed:
        # The table says which; the run itself succeeded, so the exit code stays 0.
        print(f"bench: {len(failed)} figure(s) short of their goal", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
