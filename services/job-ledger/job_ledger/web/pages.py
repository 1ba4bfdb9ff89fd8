"""The admin pages: the run history with its chart and statistics, and one job in detail.

Every page needs a session (else a redirect to the login form); every form needs the
session's CSRF token (else a 403 page). Forms post, then redirect to a page that shows the
outcome (post-redirect-get), so a reload never asks for a second run: a run request is shown
with what the worker answered (:mod:`job_ledger.web.request_notice`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from job_ledger.web import new_runs, queries, rows
from job_ledger.web.auth import Session
from job_ledger.web.charts import runs_chart
from job_ledger.web.context import WebContext
from job_ledger.web.display import event_summary
from job_ledger.web.errors import ApiError
from job_ledger.web.figures import job_stats, progress_of, schedule_glance
from job_ledger.web.login import login_routes
from job_ledger.web.page_sessions import (
    PageSettings,
    clear_flash,
    redirect_with_flash,
    session_of,
    signed_form,
    take_flash,
)
from job_ledger.web.params import parse_before, parse_job_name, parse_uuid
from job_ledger.web.request_notice import (
    QUERY_PARAM,
    REFRESH_WHILE_PENDING_S,
    RequestNotice,
    page_with_notice,
    request_notice,
)
from job_ledger.web.templating import render_error_page, render_page

HISTORY_RUNS = 30
TIMELINE_EVENTS = 500
REFRESH_WHILE_RUNNING_S = 5


class AdminPages:
    """The admin pages' endpoints over one :class:`WebContext`: each method answers one route."""

    def __init__(self, ctx: WebContext, settings: PageSettings) -> None:
        self.ctx = ctx
        self.settings = settings

    async def _render(
        self, request: Request, session: Session, name: str, context: dict[str, Any]
    ) -> Response:
        flash = take_flash(request, self.settings)
        response = await render_page(
            name,
            {
                **context,
                "flash": flash,
                "csrf_token": self.settings.keys.csrf_token(session),
                "zone": self.ctx.zone,
            },
        )
        clear_flash(request, response, self.settings)
        return response

    async def home(self, _: Request) -> Response:
        return RedirectResponse("/admin/jobs", status_code=303)

    async def history(self, request: Request) -> Response:
        session = session_of(request, self.settings)
        if isinstance(session, Response):
            return session
        now = self.ctx.clock()
        try:
            job_name = parse_job_name(request.query_params.get("jobName"))
            before = parse_before(request.query_params.get("before"))
            async with self.ctx.pool.acquire() as conn:
                notice = await request_notice(conn, request.query_params.get(QUERY_PARAM))
                page = await queries.history_page(conn, HISTORY_RUNS, job_name, before)
                runs = await queries.recent_runs(conn, job_name)
                last_success = await queries.last_success_at(conn, job_name)
                last_check = await queries.last_schedule_check(conn, self.ctx.job_name)
        except ApiError as exc:
            return await render_error_page(400, exc.message)
        return await self._render(
            request,
            session,
            "jobs.html",
            {
                "jobs": page.jobs,
                "older_url": None if page.older is None else _history_url(job_name, page.older),
                "newest_url": None if before is None else _history_url(job_name, None),
                "job_name": job_name,
                "stats": job_stats(runs, last_success),
                "schedule": schedule_glance(
                    self.ctx.job_name, self.ctx.job_schedule, now, last_check
                ),
                "chart": runs_chart(page.jobs, now, self.ctx.zone),
                "progress": {j.id: progress_of(j, now) for j in page.jobs},
                "notice": notice,
                "refresh_s": _refresh_s(False, notice),
            },
        )

    async def detail(self, request: Request) -> Response:
        session = session_of(request, self.settings)
        if isinstance(session, Response):
            return session
        try:
            job_id = parse_uuid(request.path_params["id"])
            async with self.ctx.pool.acquire() as conn:
                notice = await request_notice(conn, request.query_params.get(QUERY_PARAM))
                job = await queries.job_log(conn, job_id)
                if job is None:
                    return await render_error_page(404, "The ledger has no job with this id (yet).")
                events, total = await queries.job_events(conn, job_id, TIMELINE_EVENTS, 0)
        except ApiError as exc:
            return await render_error_page(400, exc.message)
        progress = progress_of(job, self.ctx.clock())
        return await self._render(
            request,
            session,
            "job.html",
            {
                "job": job,
                "progress": progress,
                "refresh_s": _refresh_s(job.status == "running", notice),
                "notice": notice,
                "groups": rows.group_failures(job.errors),
                "events": [(e, event_summary(e.event_type, e.payload)) for e in events],
                "events_total": total,
            },
        )

    async def start_run(self, request: Request) -> Response:
        form = await signed_form(request, self.settings)
        if isinstance(form, Response):
            return form
        back = str(form.get("back") or "")
        target = back if back.startswith("/admin/jobs") and "//" not in back else "/admin/jobs"
        try:
            command = await new_runs.request_new_run(self.ctx)
        except ApiError as exc:
            return redirect_with_flash(target, exc.message, "error", self.settings)
        return RedirectResponse(page_with_notice(target, command.request_id), status_code=303)

    async def retry_failed(self, request: Request) -> Response:
        form = await signed_form(request, self.settings)
        if isinstance(form, Response):
            return form
        try:
            job_id = parse_uuid(request.path_params["id"])
        except ApiError as exc:
            return await render_error_page(400, exc.message)
        target = f"/admin/jobs/{job_id}"
        try:
            command = await new_runs.request_retry(self.ctx, job_id)
        except ApiError as exc:
            if exc.status == 404:
                return await render_error_page(404, exc.message)
            return redirect_with_flash(target, exc.message, "error", self.settings)
        return RedirectResponse(page_with_notice(target, command.request_id), status_code=303)


def page_routes(ctx: WebContext, settings: PageSettings) -> list[BaseRoute]:
    """Return the ``/admin`` routes: login, logout, history, detail and the two forms."""
    pages = AdminPages(ctx, settings)
    return [
        *login_routes(settings),
        Route("/admin", pages.home, methods=["GET"]),
        Route("/admin/jobs", pages.history, methods=["GET"]),
        Route("/admin/jobs/run", pages.start_run, methods=["POST"]),
        Route("/admin/jobs/{id}", pages.detail, methods=["GET"]),
        Route("/admin/jobs/{id}/retry-failed", pages.retry_failed, methods=["POST"]),
    ]


def _history_url(job_name: str | None, before: rows.HistoryCursor | None) -> str:
    """The history page of ``job_name`` (every job when None) from ``before`` (the newest)."""
    query = {
        key: value
        for key, value in (("jobName", job_name), ("before", before and before.token))
        if value is not None
    }
    return f"/admin/jobs?{urlencode(query)}" if query else "/admin/jobs"


def _refresh_s(running: bool, notice: RequestNotice | None) -> int | None:
    """How often a page reloads itself: while a job runs, and faster while a run request
    waits for the worker's answer; None when nothing is expected to change."""
    if notice is not None and notice.state == "pending":
        return REFRESH_WHILE_PENDING_S
    return REFRESH_WHILE_RUNNING_S if running else None
