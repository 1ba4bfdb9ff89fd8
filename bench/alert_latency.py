"""Stage 5, alert latency: JobFinished published → request at a loopback Resend, one job at a time.

The limit: ``python -m bench.bare alert``, a bare aio-pika consumer that posts one email
request per JobFinished. Ours: the real ``notifier serve`` with ``RESEND_API_URL`` on the same
loopback server. Beside them, for information, the notifier without the consumer's reserve /
hand-over (:mod:`bench.notifier_without_handover`: the dispatcher claims every record itself).
All run at once, each on its own queue, and get their jobs in turn (one to the limit, one to
ours, …), so that a change in the machine's load weighs on all alike. Each JobFinished is
published (persistent, mandatory, confirmed) once the previous request arrived and every side
has settled (:data:`SETTLE_S`: alerts come one per job, not back to back, so the previous
alert's bookkeeping is not what is measured); the figures are latencies, not queueing.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import orjson
from aiohttp import web

from bench.common import Endpoints, Figure, StageResult, stage_cli
from bench.stage_env import scratch_schema, scratch_topology, service_env, stage_logs
from chassis.broker import connect, publisher_channel
from contracts.topology import BrokerNames
from tests.harness.ports import ReservedPort
from tests.harness.processes import ServiceProcess, started, wait_http_ok

STAGE = "alert latency"
DEFAULT_JOBS = 200
SETTLE_S = 0.05
JOB_NAME = "weekly-gvs-recalculation"


class LoopbackResend:
    """A loopback ``POST /emails`` that answers like Resend and notes when each job's request
    arrived (by the job id in its ``Idempotency-Key``, else in its body)."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self._waiters: dict[str, asyncio.Future[float]] = {}
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _emails(self, request: web.Request) -> web.Response:
        at = time.perf_counter()
        body = await request.read()
        text = request.headers.get("Idempotency-Key", "") + body.decode(errors="replace")
        for job_id, waiter in list(self._waiters.items()):
            if job_id in text and not waiter.done():
                waiter.set_result(at)
        return web.json_response({"id": str(uuid.uuid4())})

    def expect(self, job_id: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiters[job_id] = future
        return future

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[LoopbackResend]:
        app = web.Application()
        app.router.add_post("/emails", self._emails)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(runner.addresses[0][1])
        try:
            yield self
        finally:
            await runner.cleanup()


def job_finished(job_id: str) -> aio_pika.Message:
    event_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    body = orjson.dumps(
        {
            "event_id": event_id,
            "event_type": "JobFinished",
            "schema_version": 1,
            "job_id": job_id,
            "job_name": JOB_NAME,
            "sequence": 21,
            "occurred_at": now.isoformat(),
            "payload": {
                "status": "completed",
                "daos_total": 20,
                "daos_processed": 20,
                "daos_failed": 0,
                "duration_ms": 4200,
                "cache_invalidated": True,
                "fatal_error": None,
                "failures": [],
            },
        }
    )
    return aio_pika.Message(
        body=body,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=event_id,
        type="JobFinished",
        timestamp=now,
        headers={"schema_version": 1},
    )


async def latencies(
    endpoints: Endpoints, topologies: list[BrokerNames], resend: LoopbackResend, jobs: int
) -> list[list[float]]:
    """Publish ``jobs`` JobFinished to each topology in turn, one at a time; return each
    topology's latencies in ms."""
    connection = await connect(endpoints.amqp_url, name="bench-alerts")
    try:
        channel = await publisher_channel(connection)
        exchanges = [await channel.get_exchange(t.exchange, ensure=False) for t in topologies]
        found: list[list[float]] = [[] for _ in topologies]
        for _ in range(jobs):
            for exchange, latencies_ms in zip(exchanges, found, strict=True):
                job_id = str(uuid.uuid4())
                arrived = resend.expect(job_id)
                sent = time.perf_counter()
                await exchange.publish(
                    job_finished(job_id), f"{JOB_NAME}.job.finished", mandatory=True
                )
                latencies_ms.append((await asyncio.wait_for(arrived, 30) - sent) * 1000)
                await asyncio.sleep(SETTLE_S)
        await channel.close()
        return found
    finally:
        await connection.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def notifier_process(
    name: str,
    module: str,
    endpoints: Endpoints,
    topology: BrokerNames,
    schema: str,
    resend: LoopbackResend,
    port: int,
    logs: Path,
) -> ServiceProcess:
    """``python -m <module> serve`` as the notifier on ``topology`` and ``schema``."""
    env = service_env(
        endpoints,
        topology,
        notifier_schema=schema,
        resend_api_key="re_bench",
        resend_api_url=resend.url,
        alert_email_to="ops@example.test",
        admin_base_url="https://admin.example.test",
        health_host="127.0.0.1",
    )
    command = [sys.executable, "-m", module, "serve", "--port", str(port)]
    return ServiceProcess(name, command, env, logs)


async def measure(endpoints: Endpoints, jobs: int, log_dir: Path | None) -> list[list[float]]:
    """Start the three sides and return their latencies in ms (limit, ours, without)."""
    resend = LoopbackResend()
    with stage_logs(log_dir) as logs:
        async with (
            resend.serving(),
            scratch_topology(endpoints.amqp_url, "alert-bare") as bare_topology,
            scratch_topology(endpoints.amqp_url, "alert") as topology,
            scratch_topology(endpoints.amqp_url, "alert-nho") as plain_topology,
            scratch_schema(endpoints.database_url, "alert") as schema,
            scratch_schema(endpoints.database_url, "alert_nho") as plain_schema,
            ReservedPort() as reserved,
            ReservedPort() as plain_reserved,
        ):
            bare_command = [sys.executable, "-m", "bench.bare", "alert"]
            bare_command += ["--queue", bare_topology.notifier_queue, "--resend-url", resend.url]
            bare = ServiceProcess(
                "bare-alert", bare_command, service_env(endpoints, bare_topology), logs
            )
            ours = notifier_process(
                "notifier", "notifier", endpoints, topology, schema, resend, reserved.port, logs
            )
            plain = notifier_process(
                "notifier-without-handover",
                "bench.notifier_without_handover",
                endpoints,
                plain_topology,
                plain_schema,
                resend,
                plain_reserved.port,
                logs,
            )
            sides = [bare_topology, topology, plain_topology]
            async with started(bare), started(ours), started(plain):
                for process, port in ((ours, reserved.port), (plain, plain_reserved.port)):
                    await wait_http_ok(f"http://127.0.0.1:{port}/healthz", process, timeout_s=60)
                # The consumers may attach a moment after their processes report healthy; the
                # first job waits for that, and its latency is not counted.
                await latencies(endpoints, sides, resend, 1)
                return await latencies(endpoints, sides, resend, jobs)


def summary(name: str, values: list[float]) -> str:
    return (
        f"{name} p50 {statistics.median(values):.2f} ms p95 {percentile(values, 0.95):.2f} ms"
        f" p99 {percentile(values, 0.99):.2f} ms"
    )


async def run(
    endpoints: Endpoints, jobs: int = DEFAULT_JOBS, log_dir: Path | None = None
) -> StageResult:
    """Measure the bare consumer, the notifier and the notifier without the hand-over, over
    ``jobs`` jobs each, given in turn."""
    result = StageResult(STAGE)
    limit, ours, plain = await measure(endpoints, jobs, log_dir)
    ours_p50 = statistics.median(ours)
    result.figures += [
        Figure(
            STAGE,
            f"p50 ms, JobFinished → Resend request, {jobs} jobs",
            "ms",
            ours_p50,
            statistics.median(limit),
            2.0,
            higher_is_better=False,
            goal_text="≤ 2× the limit's",
        ),
        Figure(
            STAGE,
            "p99 ms",
            "ms",
            percentile(ours, 0.99),
            percentile(limit, 0.99),
            None,
            higher_is_better=False,
            goal_text="(reported)",
        ),
        Figure(
            STAGE,
            "p50 ms without the hand-over (limit column: ours)",
            "ms",
            statistics.median(plain),
            ours_p50,
            None,
            higher_is_better=False,
            goal_text="(reported)",
        ),
    ]
    result.details.append(
        f"alert latency: {summary('limit', limit)}; {summary('ours', ours)};"
        f" {summary('without the hand-over', plain)}"
    )
    return result


if __name__ == "__main__":
    stage_cli(__doc__, run, jobs=DEFAULT_JOBS)
