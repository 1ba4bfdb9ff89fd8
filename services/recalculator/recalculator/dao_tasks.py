"""Scoring a started job's DAOs: each in its own task, each ending in its result's statement.

:meth:`DaoScoring.score_all` scores every DAO (at most ``concurrency`` at once): the DAO's data
fetched with retries, scored, and recorded as DaoProcessed, or as DaoFailed when its data could
not be had. The first fatal error (the scoring crashes, the database stays away longer than
``database_patience_s``, a bug) cancels the other DAOs and is raised as :class:`RunAborted`.
:func:`database_step` is how a run's database steps wait out an outage.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

import asyncpg

from chassis.retry import DatabaseOutage, describe, is_transient_database_error, retry_transient
from recalculator import metrics
from recalculator.daos import DaoRef
from recalculator.fetching import DaoFetchFailed, RetryPolicy, fetch_with_retries
from recalculator.governance import GovernanceSource
from recalculator.jobs import JobStore
from recalculator.requests import Progress
from recalculator.scoring import WINDOW, GovernanceData, GvsScore, score_governance

log = logging.getLogger(__name__)

T = TypeVar("T")

DATABASE_PATIENCE_S = 120.0
"""How long a DAO's step waits for the database before the run stops as failed (a run's
JobFinished waits as long as it takes)."""

Scorer = Callable[[GovernanceData, datetime], GvsScore]
Clock = Callable[[], datetime]


def default_scorer(data: GovernanceData, now: datetime) -> GvsScore:
    return score_governance(data, now=now)


def utc_clock() -> datetime:
    return datetime.now(UTC)


class RunAborted(Exception):
    """A fatal error: the run stops and ends failed with this message as ``fatal_error``."""


async def database_step(
    step: Callable[[], Awaitable[T]],
    what: str,
    *,
    give_up_after_s: float | None = None,
    extra: dict[str, Any] | None = None,
) -> T:
    """``step()``, retried through transient database errors (each counted in
    ``DATABASE_RETRIES``) for up to ``give_up_after_s`` after the first (None: for as long as
    it takes), then raises ``DatabaseOutage``. As idempotent as ``step``.

    The first attempt runs outside the retry machinery: a run makes one step per DAO, nearly
    always at the first try, and the machinery's cost per call showed in a big run's time.
    """
    try:
        return await step()
    except Exception as exc:
        if not is_transient_database_error(exc):
            raise
        metrics.DATABASE_RETRIES.inc()
        log.warning("cannot %s (retrying): %s", what, describe(exc), extra=extra)
    return await retry_transient(
        step,
        what=what,
        give_up_after_s=give_up_after_s,
        on_retry=lambda _: metrics.DATABASE_RETRIES.inc(),
        extra=extra,
    )


class DaoScoring:
    """Scores DAOs with ``source`` and ``scorer`` and records each result with ``store``."""

    def __init__(
        self,
        *,
        store: JobStore,
        source: GovernanceSource,
        concurrency: int,
        policy: RetryPolicy,
        scorer: Scorer,
        clock: Clock,
        database_patience_s: float,
    ) -> None:
        self._store = store
        self._source = source
        self._concurrency = concurrency
        self._policy = policy
        self._scorer = scorer
        self._clock = clock
        self._patience_s = database_patience_s

    async def score_all(
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
            failure = exc
            await self._record(
                lambda: self._store.record_dao_failed(
                    job_id=job_id,
                    job_name=job_name,
                    dao=dao,
                    error=failure.error,
                    attempts=failure.attempts,
                ),
                extra,
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
        duration_ms = int((time.monotonic() - started) * 1000)
        computed_at = self._clock()
        await self._record(
            lambda: self._store.record_dao_processed(
                job_id=job_id,
                job_name=job_name,
                dao=dao,
                score=score,
                duration_ms=duration_ms,
                computed_at=computed_at,
            ),
            extra,
        )
        metrics.DAOS_PROCESSED.inc()
        log.info("DAO scored %.2f", score.score, extra=extra)
        progress.dao_done(dao, ok=True)

    async def _record(
        self, step: Callable[[], Awaitable[int | None]], extra: dict[str, Any]
    ) -> None:
        # A DAO's statement is idempotent (see JobStore): retrying one the outage cut is safe.
        await database_step(
            step, "record a DAO's result", give_up_after_s=self._patience_s, extra=extra
        )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, RunAborted):
        return str(exc)
    if isinstance(exc, DatabaseOutage):
        return str(exc)
    if isinstance(exc, asyncpg.PostgresError | OSError):
        return f"cannot record a DAO's result: {type(exc).__name__}: {exc}"
    return f"unexpected error: {type(exc).__name__}: {exc}"
