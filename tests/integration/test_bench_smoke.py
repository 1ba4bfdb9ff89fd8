"""Every benchmark stage at a tiny size, without thresholds, so that ``make bench`` cannot rot.

Each stage runs its limit and our code against the real broker, database and service
processes; the figures must be positive and finite and each stage must have checked its own
outcome (every event folded, every job complete, every alert delivered). Goals are not checked
here (tiny sizes say nothing about them); the verdict and exit status are unit-tested in
``tests/unit/test_bench_report.py``.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

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
from bench.backlog import MIN_EVENTS
from bench.common import Endpoints, Figure, StageResult
from bench.cpu import cpu_seconds, with_descendants

pytestmark = pytest.mark.bench


@pytest.fixture
def endpoints(database_url: str, amqp_url: str) -> Endpoints:
    return Endpoints(database_url, amqp_url)


def _sane(result: StageResult, figures: int) -> list[Figure]:
    assert len(result.figures) == figures, result.figures
    for figure in result.figures:
        assert math.isfinite(figure.ours) and figure.ours > 0, figure
        if figure.limit is not None:
            assert math.isfinite(figure.limit) and figure.limit > 0, figure
    return result.figures


async def test_the_outbox_relay_stage_measures_both_sides(endpoints: Endpoints) -> None:
    (figure,) = _sane(await outbox_relay.run(endpoints, events=300, rounds=2), 1)
    assert figure.unit == "events/s" and figure.ratio is not None
    assert "median of 2 rounds" in figure.note


async def test_the_ingest_stage_folds_every_event_and_samples_the_ledgers_memory(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    # The smallest backlog that still spans several transactions on either side.
    events = MIN_EVENTS
    result = await ledger_ingest.run(
        endpoints, events=events, backlog_events=events, log_dir=tmp_path, rounds=1
    )
    ingest, catch_up, memory = _sane(result, 3)
    assert ingest.stage == "ledger ingest" and catch_up.stage == "backlog catch-up"
    assert 20 < memory.ours < 1000, "the ledger's RSS in MB"
    assert memory.passed is not None


async def test_the_history_api_stage_loads_both_servers_with_wrk(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    rps, p99, p50 = _sane(
        await history_api.run(endpoints, jobs=200, seconds=1, log_dir=tmp_path), 3
    )
    assert rps.unit == "req/s" and p99.ours >= p50.ours


async def test_the_alert_stage_times_every_request_at_the_loopback_resend(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    p50, p99, without = _sane(await alert_latency.run(endpoints, jobs=5, log_dir=tmp_path), 3)
    assert p99.ours >= p50.ours
    assert without.limit == p50.ours, "the side without the hand-over is set against ours"


async def test_the_big_run_stage_waits_for_the_ledger_to_show_the_job_complete(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    (figure,) = _sane(await big_run.run(endpoints, daos=30, log_dir=tmp_path, rounds=1), 1)
    assert figure.limit is not None and figure.passed is None, "reported, without a goal"


async def test_the_monitoring_cpu_stage_sums_the_cpu_of_both_pipelines(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    result = await monitoring_cpu.run(
        endpoints, daos=monitoring_cpu.MIN_DAOS, log_dir=tmp_path, rounds=1
    )
    (figure,) = _sane(result, 1)
    assert figure.unit == "CPU-ms/event"
    for group in ("publisher", "consumer", "relay", "ledger", "broker", "postgres"):
        assert group in result.details[0]


async def test_the_slow_hub_stage_times_the_run_with_and_without_monitoring(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    result = await hub_run.run(endpoints, daos=8, latency_ms=20, log_dir=tmp_path, rounds=1)
    (figure,) = _sane(result, 1)
    # Eight DAOs, one request each at 20 ms, at most DAO_CONCURRENCY at once.
    assert figure.limit is not None and figure.limit >= 0.02


async def test_the_api_under_ingest_stage_loads_the_api_at_a_constant_rate(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    result = await api_under_ingest.run(
        endpoints, daos=1000, jobs=50, rate=50, pace=2000, log_dir=tmp_path, rounds=1
    )
    split, all_in_one = _sane(result, 2)
    assert (split.unit, split.goal, all_in_one.unit, all_in_one.goal) == ("ms", 3.0, "ms", None)
    assert "--role api" in split.metric


def test_cpu_time_is_read_for_a_process_and_its_children() -> None:
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nend = time.process_time() + 0.3\n"
            "while time.process_time() < end: pass\ntime.sleep(30)",
        ]
    )
    try:
        deadline = time.monotonic() + 20
        while (cpu_seconds(child.pid) or 0.0) < 0.25:
            assert time.monotonic() < deadline, "the child never used its CPU"
            time.sleep(0.05)
        assert child.pid in with_descendants(os.getpid())
    finally:
        child.kill()
        child.wait()


def test_wrk_output_is_read_with_its_units() -> None:
    output = """Running 1s test @ http://127.0.0.1:1/
  Latency Distribution
     50%  812.00us
     75%    1.20ms
     90%    2.00ms
     99%    1.50s
  1234 requests in 1.00s, 1.00MB read
Requests/sec:   1234.50
"""
    load = history_api.parse_wrk(output)
    assert (load.requests_per_s, load.p50_ms, load.p99_ms) == (1234.5, 0.812, 1500.0)
    assert load.requests == 1234 and load.errors == 0
