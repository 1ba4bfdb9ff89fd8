"""The run: JobStarted, every DAO scored concurrently, cache revalidation, JobFinished.

``Recalculation.run(request)`` takes the job's run lock (a second run is refused and writes
nothing), reads the DAOs to score, writes the job row with JobStarted, then scores each DAO in
its own task (at most ``concurrency`` at once). Each DAO ends in one transaction: its score row
with DaoProcessed, or its DaoFailed. A fatal error (the DAO list cannot be read, the scoring
crashes, the run is cancelled) stops the remaining DAOs and still ends in JobFinished
``failed`` with ``fatal_error``. Events reach the broker through the outbox relay, woken after
each commit; nothing here talks to RabbitMQ.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol
from uuid import UUID

import asyncpg

from contracts import JobFinishedPayload
from contracts.events import Trigger
from recalculator import metrics
from recalculator.daos import DaoRef
from recalculator.fetching import DaoFetchFailed, RetryPolicy, fetch_with_retries
from recalculator.governance import GovernanceSource
from recalculator.guard import run_lock
from recalculator.jobs import JobStore
from recalculator.registry import UnknownDaos, daos_to_score
from recalculator.revalidation import CacheRevalidator
from recalculator.scoring import WINDOW, GovernanceData, GvsScore, score_governance

log = logging.getLogger(__name__)

Scorer = Callable[[GovernanceData, datetime], GvsScore]
Clock = Callable[[], datetime]
OnStarted = Callable[[UUID], Awaitable[None]]


def default_scorer(data: GovernanceData, now: datetime) -> GvsScore:
    return score_governance(data, now=now)


def utc_clock() -> datetime:
    return datetime.now(UTC)


class Progress(Protocol):
    """What a run reports as it goes (a progress bar, a log, metrics)."""

    def started(self, job_id: UUID, total: int) -> None: ...

    def dao_done(self, dao: DaoRef, ok: bool) -> None: ...


class SilentProgress:
    def started(self, job_id: UUID, total: int) -> None:
        return None

    def dao_done(self, dao: DaoRef, ok: bool) -> None:
        return None


@dataclass(frozen=True)
class RunRequest:
    """One run to do: all active DAOs (``dao_ids`` None) or exactly those named."""

    job_name: str
    trigger: Trigger = "manual"
    dao_ids: tuple[str, ...] | None = None
    request_id: UUID | None = None


@dataclass(frozen=True)
class RunOutcome:
    """How a request ended: ``completed`` or ``failed`` (with JobFinished's payload),
    ``refused`` (another run holds the lock) or ``duplicate`` (this request already ran)."""

    status: Literal["completed", "failed", "refused", "duplicate"]
    job_id: UUID | None = None
    finished: JobFinishedPayload | None = None
    message: str = ""


class RunAborted(Exception):
    """A fatal error: the run stops and ends failed with this message as ``fatal_error``."""


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
    ) -> None:
        self._pool = pool
        self._store = store
        self._source = source
        self._revalidator = revalidator
        self._concurrency = concurrency
        self._policy = policy or RetryPolicy()
        self._scorer = scorer
        self._clock = clock

    async def run(
        self,
        request: RunRequest,
        progress: Progress | None = None,
        on_started: OnStarted | None = None,
    ) -> RunOutcome:
        """Runs ``request`` to its JobFinished and returns the outcome.

        Returns ``refused`` without writing anything when another run of the job holds the
        lock, ``duplicate`` when a job for ``request.request_id`` exists. ``on_started`` is
        awaited once the job row and JobStarted are committed (the worker acks its command
        there). Raises the database's
        error only when even JobFinished cannot be written (the job then stays ``running``
        until the ledger's watchdog abandons it). Re-raises ``CancelledError`` after recording
        the interrupted job as failed.
        """
        progress = progress or SilentProgress()
        async with run_lock(self._pool, request.job_name) as locked:
            if not locked:
                metrics.RUNS_REFUSED.inc()
                message = (
                    f"refused: a {request.job_name} run is already in progress"
                    " (another process holds its lock); nothing was started"
                )
                log.warning(message, extra={"request_id": request.request_id})
                return RunOutcome("refused", message=message)
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
            daos = await daos_to_score(self._pool, request.dao_ids)
        except UnknownDaos as exc:
            fatal = str(exc)
        except (asyncpg.PostgresError, OSError) as exc:
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
                await self._score_all(job_id, request.job_name, daos, started_at, progress)
            except RunAborted as exc:
                fatal = str(exc)
            except asyncio.CancelledError:
                cancelled = True
                fatal = "run interrupted: the process was asked to stop before every DAO was done"
        if fatal is not None:
            log.error("job failed fatally: %s", fatal, extra=extra)
        cache_invalidated = False
        processed_ids = await self._store.processed_dao_ids(job_id)
        if processed_ids and not cancelled:
            cache_invalidated = await self._revalidator.revalidate(job_id, processed_ids)
        payload = await self._store.finish_job(
            job_id=job_id,
            job_name=request.job_name,
            duration_ms=int((time.monotonic() - started) * 1000),
            cache_invalidated=cache_invalidated,
            fatal_error=fatal,
            finished_at=self._clock(),
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
        if cancelled:
            raise asyncio.CancelledError
        return RunOutcome(payload.status, job_id=job_id, finished=payload)

    async def _score_all(
        self,
        job_id: UUID,
        job_name: str,
        daos: Sequence[DaoRef],
        now: datetime,
        progress: Progress,
    ) -> None:
        slots = asyncio.Semaphore(self._concurrency)

        async def one(dao: DaoRef) -> None:
            async with slots:
                await self._score_one(job_id, job_name, dao, now, progress)

        try:
            async with asyncio.TaskGroup() as group:
                for dao in daos:
                    group.create_task(one(dao))
        except* Exception as group_error:
            # The first fatal error stops the run; the TaskGroup has cancelled the other DAOs,
            # whose open transactions rolled back and gave their sequence numbers back.
            raise RunAborted(_describe(group_error.exceptions[0])) from None

    async def _score_one(
        self,
        job_id: UUID,
        job_name: str,
        dao: DaoRef,
        now: datetime,
        progress: Progress,
    ) -> None:
        extra = {"job_id": job_id, "dao_id": dao.id}
        started = time.monotonic()
        try:
            fetched = await fetch_with_retries(self._source, dao, now - WINDOW, self._policy)
        except DaoFetchFailed as exc:
            await self._store.record_dao_failed(
                job_id=job_id, job_name=job_name, dao=dao, error=exc.error, attempts=exc.attempts
            )
            metrics.DAOS_FAILED.inc()
            log.warning("DAO failed after %d attempt(s): %s", exc.attempts, exc.error, extra=extra)
            progress.dao_done(dao, ok=False)
            return
        try:
            score = self._scorer(fetched.data, now)
        except Exception as exc:
            # A crash of the pure scoring is a bug, not bad luck with one DAO: stop the run.
            raise RunAborted(
                f"scoring crashed on DAO {dao.id}: {type(exc).__name__}: {exc}"
            ) from exc
        await self._store.record_dao_processed(
            job_id=job_id,
            job_name=job_name,
            dao=dao,
            score=score,
            duration_ms=int((time.monotonic() - started) * 1000),
            computed_at=self._clock(),
        )
        metrics.DAOS_PROCESSED.inc()
        log.info("DAO scored %.2f", score.score, extra=extra)
        progress.dao_done(dao, ok=True)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, RunAborted):
        return str(exc)
    if isinstance(exc, asyncpg.PostgresError | OSError):
        return f"cannot record a DAO's result: {type(exc).__name__}: {exc}"
    return f"unexpected error: {type(exc).__name__}: {exc}"
