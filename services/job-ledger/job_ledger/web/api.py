"""The JSON API under ``/api/admin`` (the story's contract; ``schemas`` holds its shapes).

Every route runs behind :class:`job_ledger.web.auth.BearerAuth`; every refusal is an
``ApiError`` that leaves in the error shape.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from job_ledger import run_requests
from job_ledger.web import new_runs, queries, rows
from job_ledger.web.context import WebContext
from job_ledger.web.errors import ApiError, JsonResponse
from job_ledger.web.figures import job_stats, progress_of
from job_ledger.web.params import (
    parse_before,
    parse_job_name,
    parse_limit,
    parse_offset,
    parse_uuid,
)
from job_ledger.web.serialize import (
    event_json,
    failure_group_json,
    job_log_json,
    run_request_json,
    run_request_outcome_json,
    stats_json,
)

EVENTS_DEFAULT_LIMIT = 1000
EVENTS_MAX_LIMIT = 5000
MAX_RUN_BODY_BYTES = 2_000_000


class JsonApi:
    """The API's endpoints over one :class:`WebContext`: each method answers one route."""

    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    async def list_job_logs(self, request: Request) -> Response:
        limit = parse_limit(request.query_params.get("limit"))
        job_name = parse_job_name(request.query_params.get("jobName"))
        before = parse_before(request.query_params.get("before"))
        raw_id = request.query_params.get("id")
        now = self.ctx.clock()
        async with self.ctx.pool.acquire() as conn:
            if raw_id is not None:
                job = await queries.job_log(conn, parse_uuid(raw_id))
                # The filters compose: the job must match jobName and sort before the cursor.
                if (
                    job is None
                    or (job_name is not None and job.job_name != job_name)
                    or (before is not None and not before.precedes(job))
                ):
                    raise ApiError(404, "No job log with this id")
                page = rows.HistoryPage([job], None)
            else:
                page = await queries.history_page(conn, limit, job_name, before)
        data = [job_log_json(j, progress_of(j, now)) for j in page.jobs]
        next_before = None if page.older is None else page.older.token
        return JsonResponse(
            {"data": data, "meta": {"count": len(data), "limit": limit, "nextBefore": next_before}}
        )

    async def list_events(self, request: Request) -> Response:
        job_id = parse_uuid(request.path_params["id"])
        limit = parse_limit(
            request.query_params.get("limit"), EVENTS_DEFAULT_LIMIT, EVENTS_MAX_LIMIT
        )
        offset = parse_offset(request.query_params.get("offset"))
        async with self.ctx.pool.acquire() as conn:
            if not await queries.job_exists(conn, job_id):
                raise ApiError(404, "No job with this id")
            events, total = await queries.job_events(conn, job_id, limit, offset)
        return JsonResponse(
            {
                "data": [event_json(e) for e in events],
                "meta": {"count": len(events), "limit": limit, "offset": offset, "total": total},
            }
        )

    async def list_errors(self, request: Request) -> Response:
        job_id = parse_uuid(request.path_params["id"])
        async with self.ctx.pool.acquire() as conn:
            job = await queries.job_log(conn, job_id)
        if job is None:
            raise ApiError(404, "No job log with this id")
        groups = rows.group_failures(job.errors)
        return JsonResponse(
            {
                "data": [failure_group_json(g) for g in groups],
                "meta": {"count": len(groups), "failures": sum(g.count for g in groups)},
            }
        )

    async def stats(self, request: Request) -> Response:
        job_name = parse_job_name(request.query_params.get("jobName"))
        async with self.ctx.pool.acquire() as conn:
            runs = await queries.recent_runs(conn, job_name)
            last_success = await queries.last_success_at(conn, job_name)
        return JsonResponse({"data": stats_json(job_stats(runs, last_success), job_name)})

    async def run(self, request: Request) -> Response:
        job_name, dao_ids = _run_body(await _small_body(request))
        command = await new_runs.request_new_run(self.ctx, job_name, dao_ids)
        return JsonResponse({"data": run_request_json(command)}, status_code=202)

    async def retry_failed(self, request: Request) -> Response:
        command = await new_runs.request_retry(self.ctx, parse_uuid(request.path_params["id"]))
        return JsonResponse({"data": run_request_json(command)}, status_code=202)

    async def run_request_outcome(self, request: Request) -> Response:
        request_id = parse_uuid(request.path_params["requestId"], "requestId")
        async with self.ctx.pool.acquire() as conn:
            found = await run_requests.run_request(conn, request_id)
        if found is None:
            raise ApiError(404, "No run request with this id")
        return JsonResponse({"data": run_request_outcome_json(found)})


def api_routes(ctx: WebContext) -> list[Route]:
    """Return the ``/admin/...`` routes, to be mounted under ``/api``."""
    api = JsonApi(ctx)
    return [
        Route("/admin/job-logs", api.list_job_logs, methods=["GET"]),
        Route("/admin/job-logs/{id}/events", api.list_events, methods=["GET"]),
        Route("/admin/job-logs/{id}/errors", api.list_errors, methods=["GET"]),
        Route("/admin/job-logs/{id}/retry-failed", api.retry_failed, methods=["POST"]),
        Route("/admin/job-stats", api.stats, methods=["GET"]),
        Route("/admin/jobs/run", api.run, methods=["POST"]),
        Route("/admin/run-requests/{requestId}", api.run_request_outcome, methods=["GET"]),
    ]


async def _small_body(request: Request) -> bytes:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_RUN_BODY_BYTES:
            raise ApiError(400, f"the body is over {MAX_RUN_BODY_BYTES} bytes")
    return body


def _run_body(body: bytes) -> tuple[str | None, list[str] | None]:
    """Return ``(jobName, daoIds)`` of an optional ``{"jobName"?, "daoIds"?}`` JSON body.

    A missing jobName is None (the ledger's own ``JOB_NAME``). Raises ``ApiError(400)`` for
    anything else.
    """
    if not body.strip():
        return None, None
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ApiError(400, "the body must be JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    unknown = set(data) - {"jobName", "daoIds"}
    if unknown:
        raise ApiError(400, f"unknown fields: {', '.join(sorted(unknown))}")
    job_name = None
    if "jobName" in data:
        raw_name = data["jobName"]
        job_name = parse_job_name(raw_name if isinstance(raw_name, str) else "")
    dao_ids = data.get("daoIds")
    if dao_ids is not None and not (
        isinstance(dao_ids, list)
        and 1 <= len(dao_ids) <= 100_000
        and all(isinstance(d, str) and d for d in dao_ids)
    ):
        raise ApiError(400, "daoIds must be null or a non-empty list of non-empty strings")
    return job_name, dao_ids
