"""``python -m bench``: run every stage, print the table and write ``docs/benchmarks.md``.

Each stage measures its raw limit and our code in the same run. The machine and the versions
of what was measured are written beside the table. Anything below the history marker in an
existing ``docs/benchmarks.md`` (the dated history of changes) is kept. A stage that crashes
is reported and the others still run. Exit status: 0 when every goal was met, 1 when a goal was
missed or a stage crashed (each named on stderr), 2 for bad configuration or arguments.
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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import asyncpg

from bench import (
    alert_latency,
    api_under_ingest,
    big_run,
    history_api,
    hub_run,
    ledger_ingest,
    monitoring_cpu,
    outbox_relay,
)
from bench.common import Endpoints, StageResult
from bench.report import gate, render, write_report
from bench.rounds import DEFAULT_ROUNDS
from chassis.settings import SettingsError

STAGES = ("relay", "ingest", "api", "api-ingest", "alert", "cpu", "hub", "big")


@dataclass(frozen=True)
class Stage:
    """One stage of the plan: its command-line name and how to run it."""

    name: str
    run: Callable[[], Awaitable[StageResult]]


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=STAGES, help="run only these stages")

    def size(flag: str, default: int, text: str) -> None:
        parser.add_argument(flag, type=int, default=default, help=f"{text} ({default:,})")

    size("--rounds", DEFAULT_ROUNDS, "rounds per side of every interleaved stage")
    size("--events", outbox_relay.DEFAULT_EVENTS, "outbox relay and ledger ingest size")
    size("--backlog-events", ledger_ingest.DEFAULT_BACKLOG, "backlog catch-up size; 0 skips it")
    size("--jobs", history_api.DEFAULT_JOBS, "jobs in job_logs for the history API")
    size("--api-seconds", history_api.DEFAULT_SECONDS, "wrk duration per server and round")
    size("--api-ingest-daos", api_under_ingest.DEFAULT_DAOS, "DAOs ingested under the API load")
    size("--api-rate", api_under_ingest.DEFAULT_RATE, "req/s of the API load during ingest")
    size("--api-ingest-pace", 0, "events/s of that ingest; 0 publishes them as a backlog")
    size("--alerts", alert_latency.DEFAULT_JOBS, "JobFinished events for the alert latency")
    size("--cpu-daos", monitoring_cpu.DEFAULT_DAOS, "DAOs of the run whose events are costed")
    size("--hub-daos", hub_run.DEFAULT_DAOS, "DAOs of the run against the slow hub")
    size("--hub-latency-ms", hub_run.DEFAULT_LATENCY_MS, "the slow hub's latency per request")
    size("--daos", big_run.DEFAULT_DAOS, "DAOs in the big run on the file source")
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("docs/benchmarks.md"),
        help="where to write the table ('-' for nowhere)",
    )
    return parser


def plan(args: argparse.Namespace, endpoints: Endpoints) -> list[Stage]:
    """The stages ``args`` chose, in the order they run."""
    rounds = args.rounds
    stages = [
        Stage("relay", lambda: outbox_relay.run(endpoints, args.events, rounds=rounds)),
        Stage(
            "ingest",
            lambda: ledger_ingest.run(endpoints, args.events, args.backlog_events, rounds=rounds),
        ),
        Stage(
            "api",
            lambda: history_api.run(endpoints, args.jobs, args.api_seconds, rounds=rounds),
        ),
        Stage(
            "api-ingest",
            lambda: api_under_ingest.run(
                endpoints,
                args.api_ingest_daos,
                rate=args.api_rate,
                pace=args.api_ingest_pace,
                rounds=rounds,
            ),
        ),
        Stage("alert", lambda: alert_latency.run(endpoints, args.alerts)),
        Stage("cpu", lambda: monitoring_cpu.run(endpoints, args.cpu_daos, rounds=rounds)),
        Stage(
            "hub",
            lambda: hub_run.run(endpoints, args.hub_daos, args.hub_latency_ms, rounds=rounds),
        ),
        Stage("big", lambda: big_run.run(endpoints, args.daos, rounds=rounds)),
    ]
    chosen = set(args.only or STAGES)
    return [stage for stage in stages if stage.name in chosen]


async def run_stages(stages: list[Stage]) -> list[StageResult]:
    """Run ``stages`` one after the other; a stage that raises is recorded as crashed (with
    its error) and the next one still runs. Cancellation (Ctrl-C, SIGTERM) is not caught."""
    results = []
    for stage in stages:
        began = time.monotonic()
        print(f"[bench] {stage.name} …", file=sys.stderr, flush=True)
        try:
            result = await stage.run()
        except Exception as exc:
            first_line = (str(exc).splitlines() or [""])[0]
            result = StageResult(stage.name, error=f"{type(exc).__name__}: {first_line}")
            print(f"[bench] {stage.name} crashed: {exc!r}", file=sys.stderr, flush=True)
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
    return host, await run_stages(plan(args, endpoints))


def main(argv: list[str] | None = None) -> int:
    """Run the chosen stages, print and write the report; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        ledger_ingest.check_sizes(args.events, args.backlog_events, args.rounds)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        endpoints = Endpoints.from_environment()
    except SettingsError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    began = time.monotonic()
    host, results = asyncio.run(_measure(args, endpoints))
    argv_text = list(sys.argv[1:] if argv is None else argv)
    text = render(results, host, argv_text, time.monotonic() - began, datetime.now(UTC))
    print(text)
    if str(args.output) != "-":
        write_report(args.output, text)
    status, reasons = gate(results)
    for reason in reasons:
        print(f"bench: {reason}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
