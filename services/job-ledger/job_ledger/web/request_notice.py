"""The notice a page shows after one of its buttons asked for a run: what became of it.

A button's form posts, the request is published and recorded pending, and the browser is sent
back to the page it was on with ``?request=<requestId>`` (post-redirect-get). That page then
reads the request from ``run_requests`` and shows it pending (refreshing itself until the
worker answers), accepted (with a link to the job it started) or refused (with the reason).
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from chassis.database import Connection
from job_ledger.run_requests import RunRequest, run_request
from job_ledger.web.params import parse_uuid

QUERY_PARAM = "request"
REFRESH_WHILE_PENDING_S = 2


@dataclass(frozen=True, slots=True)
class RequestNotice:
    """The request a page was asked to show; ``request`` is None when the ledger has no row."""

    request_id: UUID
    request: RunRequest | None

    @property
    def state(self) -> str:
        """``pending``, ``accepted``, ``refused``, or ``unknown``."""
        return "unknown" if self.request is None else self.request.state

    @property
    def subject(self) -> str:
        """What was asked for, as the start of a sentence: ``Retry of 3 failed DAOs``."""
        request = self.request
        if request is None:
            return f"Run request {self.request_id}"
        if request.trigger == "retry":
            count = "" if request.dao_count is None else f"{request.dao_count} "
            return f"Retry of {count}failed DAOs"
        if request.dao_count is None:
            return f"Run of {request.job_name}"
        return f"Run of {request.job_name} for {request.dao_count} DAOs"


def page_with_notice(path: str, request_id: UUID) -> str:
    """Return ``path`` (its query dropped) asking to show the request ``request_id``."""
    return f"{path.split('?', 1)[0]}?{QUERY_PARAM}={request_id}"


async def request_notice(conn: Connection, raw: str | None) -> RequestNotice | None:
    """Return the notice for the ``?request=`` value ``raw`` (None when absent).

    Raises ``ApiError(400)`` when ``raw`` is not a UUID. Reads only.
    """
    if raw is None:
        return None
    request_id = parse_uuid(raw, QUERY_PARAM)
    return RequestNotice(request_id, await run_request(conn, request_id))
