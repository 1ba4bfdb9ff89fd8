"""Asking for runs: a new run of every DAO, or a retry of one job's failed DAOs.

Both build a RunRequested, record it ``pending`` in ``run_requests`` and hand it to the
publisher in one transaction: the row commits only once the broker confirmed the command,
so a request the broker did not take leaves no row, and the worker's answer (RunAccepted /
RunRefused) always finds one to update. The API and the pages share these so they refuse the
same things the same way.
"""

from __future__ import annotations

import logging
from uuid import UUID

from contracts import RunRequested
from job_ledger.run_requests import record_requested
from job_ledger.web import queries
from job_ledger.web.context import WebContext
from job_ledger.web.errors import ApiError

log = logging.getLogger(__name__)


class _NotPublished(Exception):
    """The broker did not take the command; rolls the pending row back."""


async def _publish(ctx: WebContext, command: RunRequested) -> RunRequested:
    extra = {"request_id": str(command.request_id)}
    try:
        async with ctx.pool.acquire() as conn, conn.transaction():
            await record_requested(conn, command)
            try:
                await ctx.request_run(command)
            except Exception as exc:
                raise _NotPublished from exc
    except _NotPublished as failure:
        log.error("could not publish RunRequested", exc_info=failure.__cause__, extra=extra)
        raise ApiError(503, "Could not hand the run request to the broker; try again") from None
    log.info(
        "published RunRequested (%s, %s DAOs)",
        command.trigger,
        "all" if command.dao_ids is None else len(command.dao_ids),
        extra=extra,
    )
    return command


async def request_new_run(
    ctx: WebContext, job_name: str | None = None, dao_ids: list[str] | None = None
) -> RunRequested:
    """Publish a manual run of ``dao_ids`` (None: every active DAO) of ``job_name`` (None:
    the ledger's ``JOB_NAME``); return the command, recorded pending.

    Raises ``ApiError(503)`` when the broker did not take it (nothing is recorded then), or
    the database's error (nothing published, unless Postgres failed at the very commit: then
    the worker's answer creates the row). Not idempotent: each call asks for one more run.
    """
    command = RunRequested(
        job_name=job_name or ctx.job_name,
        trigger="manual",
        dao_ids=dao_ids,
        requested_at=ctx.clock(),
    )
    return await _publish(ctx, command)


async def request_retry(ctx: WebContext, job_id: UUID) -> RunRequested:
    """Publish a retry run of the failed DAOs of job ``job_id``; return the command, recorded
    pending.

    Raises ``ApiError`` 404 for an unknown job, 409 while it still runs or when it has no
    failed DAOs, 503 when the request could not be published. Not idempotent.
    """
    async with ctx.pool.acquire() as conn:
        job = await queries.job_log(conn, job_id)
    if job is None:
        raise ApiError(404, "No job with this id")
    if job.status == "running":
        raise ApiError(409, "The job is still running; retry its failed DAOs once it finished")
    dao_ids = job.failed_dao_ids
    if not dao_ids:
        raise ApiError(409, "The job has no failed DAOs to retry")
    command = RunRequested(
        job_name=job.job_name, trigger="retry", dao_ids=dao_ids, requested_at=ctx.clock()
    )
    return await _publish(ctx, command)
