"""The run: JobStarted, every DAO scored concurrently, cache revalidation, JobFinished.

``Recalculation.run(request)`` takes the job's run lock (a second run is refused and writes
nothing), reads the DAOs to score (unknown or inactive ids named: refused, nothing written),
writes the job row with JobStarted (and the request's RunAccepted), then scores each DAO in
its own task (at most ``concurrency`` at once, :mod:`recalculator.dao_tasks`). Each DAO ends in
one statement: its score row with DaoProcessed, or its DaoFailed. A fatal error (the DAO list
cannot be read, the scoring crashes, the run is cancelled) stops the remaining DAOs and still
ends in JobFinished ``failed`` with ``fatal_error``. A database that is briefly away (a
restart) is not fatal: each DAO's statement is retried for up to ``database_patience_s``, and
the job's JobFinished for as long as it takes. Events reach the broker through the outbox
relay, woken after each commit; nothing here talks to RabbitMQ.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import asyncpg

from chassis.retry import DatabaseOutage
from contracts import JobFinishedPayload
from recalculator import metrics
from recalculator.dao_tasks import DATABASE_PATIENCE_S, DaoScoring, RunAborted, database_step
from recalculator.dao_tasks import Clock as Clock
from recalculator.dao_tasks import Scorer as Scorer
from recalculator.dao_tasks import default_scorer as default_scorer
from recalculator.dao_tasks import utc_clock as utc_clock
from recalculator.daos import DaoRef
from recalculator.fetching import RetryPolicy
from recalculator.governance import GovernanceSource
from recalculator.jobs import JobStore
from recalculator.registry import UnknownDaos, daos_to_score
from recalculator.requests import Progress as Progress
from recalculator.requests import RunOutcome as RunOutcome
from recalculator.requests import RunRequest as RunRequest
from recalculator.requests import SilentProgress as SilentProgress
from recalculator.revalidation import CacheRevalidator
from recalculator.run_lock import already_going, run_lock

log = logging.getLogger(__name__)

OnStarted = Callable[[UUID], Awaitable[None]]


class Recalculation:
    """Runs jobs against ``pool``'s schema with ``source``; everything is handed in."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        store: JobStore,
        source: GovernanceSource,
        revalidator: CacheRevalidator,
        concurrency: int = 8,
        policy: RetryPolicy | None = None,
        scorer: Scorer = default_scorer,
        clock: Clock = utc_clock,
        database_patience_s: float = DATABASE_PATIENCE_S,
    ) -> None:
        self._pool = pool
        self._patience_s = database_patience_s
        self._store = store
        self._revalidator = revalidator
        self._clock = clock
        self._scoring = DaoScoring(
            store=store,
            source=source,
            concurrency=concurrency,
            policy=policy or RetryPolicy(),
            scorer=scorer,
            clock=clock,
            database_patience_s=database_patience_s,
        )

    async def run(
        self,
        request: RunRequest,
        progress: Progress | None = None,
        on_started: OnStarted | None = None,
    ) -> RunOutcome:
        """Runs ``request`` to its JobFinished and returns the outcome.

        Returns ``refused`` without writing anything when another run of the job holds the
        lock or a DAO id named is unknown or inactive (``message`` says which), ``duplicate``
        when a job for ``request.request_id`` exists. ``on_started`` is awaited once the job
        row and JobStarted are committed (the worker acks its command there). Raises the
        database's error only when the run cannot start (the job row and JobStarted cannot be
        written); once started, the run waits out a database outage to write its JobFinished.
        Re-raises ``CancelledError`` after recording the interrupted job as failed.
        """
        progress = progress or SilentProgress()
        async with run_lock(self._pool, request.job_name) as locked:
            if not locked:
                return _refused(request, await already_going(self._pool, request.job_name))
            metrics.RUN_IN_PROGRESS.set(1)
            try:
                return await self._run_locked(request, progress, on_started)
            finally:
                metrics.RUN_IN_PROGRESS.set(0)

    async def _run_locked(
        self, request: RunRequest, progress: Progress, on_started: OnStarted | None
    ) -> RunOutcome:
        started_at = self._clock()
        started = time.monotonic()
        fatal: str | None = None
        daos: list[DaoRef] = []
        try:
            daos = await database_step(
                lambda: daos_to_score(self._pool, request.dao_ids),
                "read the DAO list",
                give_up_after_s=self._patience_s,
            )
        except UnknownDaos as exc:
            return _refused(request, str(exc))
        except (asyncpg.PostgresError, DatabaseOutage) as exc:
            fatal = f"cannot read the DAO list: {type(exc).__name__}: {exc}"
        job_id = await self._store.start_job(
            job_name=request.job_name,
            trigger=request.trigger,
            daos_total=len(daos),
            started_at=started_at,
            request_id=request.request_id,
            dao_ids=request.dao_ids,
        )
        if job_id is None:
            message = f"request {request.request_id} already started a job; not run again"
            log.info(message, extra={"request_id": request.request_id})
            return RunOutcome("duplicate", message=message)
        extra = {"job_id": job_id, "request_id": request.request_id}
        log.info("job started: %d DAOs, trigger %s", len(daos), request.trigger, extra=extra)
        progress.started(job_id, len(daos))
        if on_started is not None:
            await on_started(job_id)
        cancelled = False
        if fatal is None:
            try:
                await self._scoring.score_all(job_id, request.job_name, daos, started_at, progress)
            except RunAborted as exc:
                fatal = str(exc)
            except asyncio.CancelledError:
                cancelled = True
                fatal = "run interrupted: the process was asked to stop before every DAO was done"
        if fatal is not None:
            log.error("job failed fatally: %s", fatal, extra=extra)
        payload = await self._finish(job_id, request.job_name, started, fatal, cancelled, extra)
        if cancelled:
            raise asyncio.CancelledError
        return RunOutcome(payload.status, job_id=job_id, finished=payload)

    async def _finish(
        self,
        job_id: UUID,
        job_name: str,
        started: float,
        fatal: str | None,
        cancelled: bool,
        extra: dict[str, Any],
    ) -> JobFinishedPayload:
        """Revalidates the cache (unless cancelled) and writes JobFinished, waiting out any
        database outage: JobFinished is what the admin hears about. Returns its payload."""
        processed_ids = await database_step(
            lambda: self._store.processed_dao_ids(job_id), "read the scored DAOs", extra=extra
        )
        cache_invalidated = False
        if processed_ids and not cancelled:
            cache_invalidated = await self._revalidator.revalidate(job_id, processed_ids)
        finished_at = self._clock()
        payload = await database_step(
            lambda: self._store.finish_job(
                job_id=job_id,
                job_name=job_name,
                duration_ms=int((time.monotonic() - started) * 1000),
                cache_invalidated=cache_invalidated,
                fatal_error=fatal,
                finished_at=finished_at,
            ),
            "write JobFinished",
            extra=extra,
        )
        metrics.RUNS_FINISHED.labels(payload.status).inc()
        metrics.LAST_RUN_STATUS.set(1 if payload.status == "completed" else 0)
        metrics.LAST_RUN_FINISHED.set_to_current_time()
        log.info(
            "job finished %s: %d processed, %d failed of %d in %d ms",
            payload.status,
            payload.daos_processed,
            payload.daos_failed,
            payload.daos_total,
            payload.duration_ms,
            extra=extra,
        )
        return payload


def _refused(request: RunRequest, reason: str) -> RunOutcome:
    metrics.RUNS_REFUSED.inc()
    log.warning("run refused: %s", reason, extra={"request_id": request.request_id})
    return RunOutcome("refused", message=reason)
