"""The figures an operator alerts on, read from the ledger's database so they survive restarts.

Every ``LEDGER_METRICS_INTERVAL`` (15 s) :class:`FiguresRefresher` reads them (a few grouped
queries over ``job_logs`` and ``job_notifications``, one row a run) and asks RabbitMQ how many
dead letters wait in each dead-letter queue of the topology; :data:`FIGURES`, on the default
registry, serves the last reading on ``/metrics``. A process that starts serves the same
values the last one did: they come from the database, not from counters in memory.

Per ``job_name``: ``ledger_job_last_success_timestamp_seconds`` (end of the newest completed
run), ``ledger_job_last_failure_timestamp_seconds`` (of the newest failed or abandoned one),
``ledger_job_first_seen_timestamp_seconds`` (start of the oldest run or missed slot kept),
``ledger_job_last_run_info{status}`` (1, with the newest run's status: running, completed,
failed or abandoned), ``ledger_job_running_since_timestamp_seconds`` (start of the run going
now; absent when none), ``ledger_job_duration_p95_seconds`` (over the last 50 completed runs),
``ledger_job_runs_missed_total`` (schedule slots with no run) and
``ledger_job_notifications_failed_total{channel}`` (alerts the notifier gave up on). Per
``queue``: ``ledger_dead_letter_messages``. And ``ledger_figures_refreshed_timestamp_seconds``,
when all of them were read.

The job's label is ``job_name``: ``job`` is Prometheus' own label for the scrape job.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import aio_pika
import asyncpg
from aio_pika.abc import AbstractRobustConnection
from prometheus_client import REGISTRY
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from chassis.retry import describe, is_transient_database_error
from chassis.topology import Topology
from contracts.events import Channel

log = logging.getLogger(__name__)

CHANNELS: tuple[Channel, ...] = ("email", "slack")
"""Every channel gets its failed-delivery series, at 0 until a failure: a rate needs a start."""

P95_RUNS = 50
"""How many of a job's latest completed runs its p95 duration is taken over."""

BROKER_TIMEOUT_S = 5.0

_PER_JOB = """
SELECT job_name,
       extract(epoch FROM min(started_at)) AS first_seen,
       extract(epoch FROM max(completed_at) FILTER (WHERE outcome = 'completed')) AS last_success,
       extract(epoch FROM max(completed_at) FILTER (WHERE outcome IN ('failed', 'abandoned')))
           AS last_failure,
       extract(epoch FROM min(started_at) FILTER (WHERE status = 'running')) AS running_since,
       count(*) FILTER (WHERE outcome = 'missed') AS missed
FROM job_logs GROUP BY job_name
"""

_LAST_RUN = """
SELECT DISTINCT ON (job_name) job_name, outcome
FROM job_logs WHERE outcome <> 'missed'
ORDER BY job_name, started_at DESC, id DESC
"""

_P95 = f"""
SELECT job_name, percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) / 1000.0 AS p95
FROM (SELECT job_name, duration_ms,
             row_number() OVER (PARTITION BY job_name ORDER BY started_at DESC, id DESC) AS n
      FROM job_logs WHERE outcome = 'completed' AND duration_ms IS NOT NULL) AS latest
WHERE n <= {P95_RUNS}
GROUP BY job_name
"""  # noqa: S608 constant text

_FAILED_NOTIFICATIONS = """
SELECT l.job_name, n.channel, count(*) AS failed
FROM job_notifications n JOIN job_logs l ON l.id = n.job_id
WHERE n.state = 'failed'
GROUP BY l.job_name, n.channel
"""


@dataclass(frozen=True)
class JobFigures:
    """One job name's figures; times in unix seconds, None when there is none."""

    job_name: str
    first_seen: float
    last_success: float | None
    last_failure: float | None
    running_since: float | None
    runs_missed: int
    last_run_status: str | None = None
    duration_p95_s: float | None = None
    notifications_failed: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Figures:
    """One reading: every job name's figures and each dead-letter queue's depth."""

    jobs: tuple[JobFigures, ...]
    dead_letters: dict[str, int]
    read_at: float


async def read_job_figures(pool: asyncpg.Pool) -> list[JobFigures]:
    """Every job name's figures from ``job_logs`` and ``job_notifications``, by job name.

    Raises the database's error.
    """
    async with pool.acquire() as conn, conn.transaction(readonly=True, isolation="repeatable_read"):
        per_job = await conn.fetch(_PER_JOB)
        last = {r["job_name"]: r["outcome"] for r in await conn.fetch(_LAST_RUN)}
        p95 = {r["job_name"]: float(r["p95"]) for r in await conn.fetch(_P95)}
        failed: dict[str, dict[str, int]] = {}
        for r in await conn.fetch(_FAILED_NOTIFICATIONS):
            failed.setdefault(r["job_name"], {})[r["channel"]] = int(r["failed"])
    return [
        JobFigures(
            job_name=r["job_name"],
            first_seen=float(r["first_seen"]),
            last_success=_seconds(r["last_success"]),
            last_failure=_seconds(r["last_failure"]),
            running_since=_seconds(r["running_since"]),
            runs_missed=int(r["missed"]),
            last_run_status=last.get(r["job_name"]),
            duration_p95_s=p95.get(r["job_name"]),
            notifications_failed={c: failed.get(r["job_name"], {}).get(c, 0) for c in CHANNELS},
        )
        for r in sorted(per_job, key=lambda row: str(row["job_name"]))
    ]


def _seconds(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


class FiguresCollector(Collector):
    """Serves the last :class:`Figures` read (nothing before the first reading)."""

    def __init__(self) -> None:
        self.figures: Figures | None = None

    def collect(self) -> Iterator[Metric]:
        figures = self.figures
        if figures is None:
            return
        yield from _job_families(figures.jobs)
        dead = GaugeMetricFamily(
            "ledger_dead_letter_messages",
            "Messages waiting in a dead-letter queue",
            labels=["queue"],
        )
        for queue, count in sorted(figures.dead_letters.items()):
            dead.add_metric([queue], count)
        yield dead
        yield GaugeMetricFamily(
            "ledger_figures_refreshed_timestamp_seconds",
            "When the ledger last read the figures it serves from its database",
            value=figures.read_at,
        )


def _job_families(jobs: Iterable[JobFigures]) -> Iterator[Metric]:
    def gauge(name: str, text: str, extra: tuple[str, ...] = ()) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, text, labels=["job_name", *extra])

    first = gauge("ledger_job_first_seen_timestamp_seconds", "Start of the oldest run or slot kept")
    success = gauge("ledger_job_last_success_timestamp_seconds", "End of the newest completed run")
    failure = gauge("ledger_job_last_failure_timestamp_seconds", "End of the newest failed run")
    running = gauge("ledger_job_running_since_timestamp_seconds", "Start of the run going now")
    p95 = gauge("ledger_job_duration_p95_seconds", f"p95 of the last {P95_RUNS} completed runs")
    info = gauge("ledger_job_last_run_info", "Status of the newest run", ("status",))
    missed = CounterMetricFamily(
        "ledger_job_runs_missed", "Schedule slots with no run", labels=["job_name"]
    )
    failed = CounterMetricFamily(
        "ledger_job_notifications_failed",
        "Alerts the notifier gave up delivering",
        labels=["job_name", "channel"],
    )
    for job in jobs:
        name = [job.job_name]
        first.add_metric(name, job.first_seen)
        for family, value in (
            (success, job.last_success),
            (failure, job.last_failure),
            (running, job.running_since),
            (p95, job.duration_p95_s),
        ):
            if value is not None:
                family.add_metric(name, value)
        if job.last_run_status is not None:
            info.add_metric([job.job_name, job.last_run_status], 1)
        missed.add_metric(name, job.runs_missed)
        for channel, count in job.notifications_failed.items():
            failed.add_metric([job.job_name, channel], count)
    yield from (first, success, failure, running, p95, info, missed, failed)


FIGURES = FiguresCollector()
REGISTRY.register(FIGURES)


class FiguresRefresher:
    """Reads :class:`Figures` into a collector every ``interval`` (a part of the fold)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        connection: AbstractRobustConnection,
        topology: Topology,
        *,
        interval: timedelta,
        collector: FiguresCollector = FIGURES,
    ) -> None:
        self._pool = pool
        self._connection = connection
        self._queues = sorted({q.dead_letter_queue for q in topology.queues})
        self._interval_s = interval.total_seconds()
        self._collector = collector

    async def run(self) -> None:
        """Refresh every ``interval`` until cancelled; raises only what no retry mends."""
        while True:
            await asyncio.sleep(self._interval_s)
            await self.refresh()

    async def refresh(self) -> None:
        """Read the figures now. The database away: the last reading stays (its time says how
        old it is); the broker away: no dead-letter figures until it is back. Raises a
        database error that no retry mends (a bug)."""
        try:
            jobs = await read_job_figures(self._pool)
        except Exception as exc:
            if not is_transient_database_error(exc):
                raise
            log.warning("figures not refreshed, database unavailable: %s", describe(exc))
            return
        self._collector.figures = Figures(tuple(jobs), await self._dead_letters(), time.time())

    async def _dead_letters(self) -> dict[str, int]:
        """Each dead-letter queue's ready messages (a passive declare); {} if the broker fails.

        A channel of its own each time: a channel that declared a queue once answers later
        declares from what it remembers, not from the broker.
        """
        try:
            async with asyncio.timeout(BROKER_TIMEOUT_S), self._connection.channel() as channel:
                counts: dict[str, int] = {}
                for name in self._queues:
                    queue = await channel.declare_queue(name, passive=True)
                    counts[name] = queue.declaration_result.message_count or 0
                return counts
        except (
            aio_pika.exceptions.AMQPException,
            aio_pika.exceptions.ChannelInvalidStateError,
            # What opening a channel raises while the connection is being re-established.
            RuntimeError,
            OSError,
            TimeoutError,
        ) as exc:
            log.warning("dead letters not counted, broker unavailable: %s", describe(exc))
            return {}
