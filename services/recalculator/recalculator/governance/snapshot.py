"""The ``snapshot`` governance source: the Snapshot hub's GraphQL API over aiohttp.

One query per page of 100 proposals, oldest first, filtered on the space and ``created_gte``;
each proposal brings its own vote count (``votes``) and voting power (``scores``,
``scores_total``), so no individual vote is downloaded. The first page also asks for the space
itself, to tell an unknown space (``space: null``) from a quiet one and to read its follower
count. Every answer is validated before it is trusted. The query is written against the hub's
published schema (vendored as ``tests/support/snapshot-hub/schema.gql``, where
``tests/support/snapshot_hub.py`` validates it).

Politeness: every request, page and retry alike, first takes a turn from one
``SlidingWindowLimiter`` shared by every DAO of the process, and carries the API key, if any,
in ``x-api-key`` (never logged, and blanked out of any text of the hub's quoted in an error).
A 429 or 503 with a ``Retry-After`` is waited out and the same page asked again, within the
time the fetch has left (``fetch_deadline``); a wait that would not fit fails the DAO at once
with ``PermanentSourceError``: trying sooner would ignore the hub, and later is past the budget.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any, Literal

import aiohttp
import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from recalculator.daos import DaoRef
from recalculator.governance.pacing import SlidingWindowLimiter, hub_rate_limit, retry_after_s
from recalculator.governance.source import (
    PermanentSourceError,
    TransientSourceError,
    fetch_deadline,
)
from recalculator.scoring import GovernanceData, Proposal

logger = logging.getLogger(__name__)

DEFAULT_HUB_URL = "https://hub.snapshot.org"
PAGE_SIZE = 100
MAX_PAGES = 20
"""2,000 proposals in 90 days is far past where activity saturates; past it we stop reading."""

PROPOSALS_QUERY = """
query GvsProposals(
  $space: String!, $since: Int!, $first: Int!, $skip: Int!, $withSpace: Boolean!
) {
  space(id: $space) @include(if: $withSpace) {
    id
    followersCount
  }
  proposals(
    first: $first
    skip: $skip
    where: {space: $space, created_gte: $since}
    orderBy: "created"
    orderDirection: asc
  ) {
    id
    created
    end
    state
    votes
    scores_total
    choices
    scores
  }
}
"""
# Oldest first: a proposal created while we page lands at the end, so skip-based pages
# neither repeat nor miss the ones already there.

_RETRYABLE_STATUSES = frozenset({408, 425, 429})
_WAIT_STATUSES = frozenset({429, 503})
"""Answers whose ``Retry-After`` is honoured."""
_SNIPPET_CHARS = 300
_UNIX_MAX = 2**32


class _Wire(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True)


class _WireSpace(_Wire):
    id: str
    followersCount: int | None = Field(default=None, ge=0)


class _WireProposal(_Wire):
    id: str = Field(min_length=1)
    created: int = Field(ge=0, le=_UNIX_MAX)
    end: int = Field(ge=0, le=_UNIX_MAX)
    state: Literal["pending", "active", "closed"]
    votes: int | None = Field(ge=0)
    scores_total: float | None = Field(ge=0, allow_inf_nan=False)
    choices: list[str | None]
    scores: list[float | None] | None

    def to_proposal(self) -> Proposal:
        return Proposal(
            id=self.id,
            created=datetime.fromtimestamp(self.created, UTC),
            end=datetime.fromtimestamp(self.end, UTC),
            state=self.state,
            votes=self.votes or 0,
            scores_total=self.scores_total or 0.0,
            choices=tuple(choice or "" for choice in self.choices),
            scores=tuple(score or 0.0 for score in self.scores or ()),
        )


class _Page(_Wire):
    proposals: list[_WireProposal]


class _FirstPage(_Page):
    space: _WireSpace | None


class SnapshotSource:
    """Reads a DAO's recent proposals from a Snapshot hub.

    ``session`` is owned by the caller (one per process); ``timeout_s`` bounds each request,
    and the whole fetch when no ``fetch_deadline`` is set. ``api_key`` goes in ``x-api-key``;
    ``limiter`` paces every request (by default, the hub's limit for keyed or keyless access).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        hub_url: str = DEFAULT_HUB_URL,
        timeout_s: float = 20.0,
        page_size: int = PAGE_SIZE,
        max_pages: int = MAX_PAGES,
        api_key: SecretStr | None = None,
        limiter: SlidingWindowLimiter | None = None,
    ) -> None:
        if timeout_s <= 0 or page_size < 1 or max_pages < 1:
            raise ValueError("timeout_s, page_size and max_pages must be positive")
        self._session = session
        self._endpoint = hub_url.rstrip("/") + "/graphql"
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._timeout_s = timeout_s
        self._page_size = page_size
        self._max_pages = max_pages
        self._api_key = api_key.get_secret_value() if api_key is not None else None
        self._headers = {"Accept": "application/json"}
        if self._api_key:
            self._headers["x-api-key"] = self._api_key
        self._limiter = limiter or SlidingWindowLimiter(
            hub_rate_limit(None, with_key=bool(self._api_key))
        )

    async def fetch(self, dao: DaoRef, since: datetime) -> GovernanceData:
        """Returns ``dao``'s proposals created at or after ``since``, with the space's follower
        count. Raises ``PermanentSourceError`` for an unknown space or a bad answer, and
        ``TransientSourceError`` for timeouts, 5xx, 429 and connection failures. Read-only."""
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        deadline = fetch_deadline.get()
        if deadline is None:
            deadline = asyncio.get_running_loop().time() + self._timeout_s
        proposals: dict[str, Proposal] = {}
        followers: int | None = None
        for page_number in range(self._max_pages):
            first = page_number == 0
            variables = {
                "space": dao.snapshot_space,
                "since": int(since.timestamp()),
                "first": self._page_size,
                "skip": page_number * self._page_size,
                "withSpace": first,
            }
            data = await self._post(dao, variables, deadline)
            page = self._validate(dao, data, _FirstPage if first else _Page)
            if isinstance(page, _FirstPage):
                if page.space is None:
                    raise PermanentSourceError(
                        f"Snapshot space {dao.snapshot_space!r} of DAO {dao.id} does not exist"
                        f" on {self._endpoint}; check the DAO's snapshot_space"
                    )
                followers = page.space.followersCount
            for wire in page.proposals:
                proposals.setdefault(wire.id, wire.to_proposal())
            if len(page.proposals) < self._page_size:
                break
        else:
            logger.warning(
                "stopped reading Snapshot space %s of DAO %s after %d pages (%d proposals)",
                dao.snapshot_space,
                dao.id,
                self._max_pages,
                len(proposals),
            )
        return GovernanceData(
            dao_id=dao.id, proposals=tuple(proposals.values()), followers_count=followers
        )

    async def _post(self, dao: DaoRef, variables: dict[str, Any], deadline: float) -> Any:
        where = f"Snapshot hub {self._endpoint} (space {dao.snapshot_space!r}, DAO {dao.id})"
        payload = {"query": PROPOSALS_QUERY, "variables": variables}
        while True:
            status, body, wait_s = await self._send(where, payload)
            if status not in _WAIT_STATUSES or wait_s is None:
                return self._decode(where, status, body)
            await self._wait(dao, where, status, wait_s, deadline)

    async def _send(self, where: str, payload: dict[str, Any]) -> tuple[int, bytes, float | None]:
        """Sends one request when the limiter allows; returns the status, the body and the
        seconds its ``Retry-After`` asks to wait (``None`` without one)."""
        await self._limiter.acquire()
        try:
            async with self._session.post(
                self._endpoint, json=payload, timeout=self._timeout, headers=self._headers
            ) as response:
                body = await response.read()
                wait_s = retry_after_s(response.headers.get("Retry-After"))
                return response.status, body, wait_s
        except TimeoutError as error:
            raise TransientSourceError(
                f"{where} did not answer within {self._timeout_s:g}s"
            ) from error
        except aiohttp.ClientError as error:
            raise TransientSourceError(
                self._redact(f"could not reach {where}: {error!r}")
            ) from error

    async def _wait(
        self, dao: DaoRef, where: str, status: int, wait_s: float, deadline: float
    ) -> None:
        """Sleeps the ``wait_s`` the hub asked for; raises ``PermanentSourceError`` at once
        when that would end past ``deadline``."""
        left_s = deadline - asyncio.get_running_loop().time()
        if wait_s >= left_s:
            raise PermanentSourceError(
                f"DAO {dao.id} ran out of its time budget waiting for the hub's Retry-After:"
                f" {where} answered HTTP {status} asking to wait {wait_s:g}s, and"
                f" {max(left_s, 0):.1f}s of the attempt (DAO_TIMEOUT) were left"
            )
        logger.warning(
            "Snapshot hub answered HTTP %d for space %s of DAO %s; waiting %gs as its"
            " Retry-After asks",
            status,
            dao.snapshot_space,
            dao.id,
            wait_s,
        )
        await asyncio.sleep(wait_s)

    def _decode(self, where: str, status: int, body: bytes) -> Any:
        snippet = self._redact(body[:_SNIPPET_CHARS].decode("utf-8", "replace"))
        if status >= 500 or status in _RETRYABLE_STATUSES:
            raise TransientSourceError(f"{where} answered HTTP {status}: {snippet}")
        if status != 200:
            raise PermanentSourceError(f"{where} refused the query with HTTP {status}: {snippet}")
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise PermanentSourceError(
                f"{where} answered malformed JSON ({error}): {snippet}"
            ) from error

    def _redact(self, text: str) -> str:
        """``text`` with the API key blanked out, for a hub that echoes what it was sent."""
        return text.replace(self._api_key, "[redacted]") if self._api_key else text

    def _validate(self, dao: DaoRef, answer: Any, model: type[_Page] | type[_FirstPage]) -> _Page:
        where = f"Snapshot hub {self._endpoint} (space {dao.snapshot_space!r}, DAO {dao.id})"
        if not isinstance(answer, dict):
            raise PermanentSourceError(f"{where} answered a JSON {type(answer).__name__}")
        errors = answer.get("errors")
        if errors:
            messages = self._redact(_messages(errors))
            raise PermanentSourceError(f"{where} answered GraphQL errors: {messages}")
        try:
            return model.model_validate(answer.get("data"))
        except ValidationError as error:
            details = "; ".join(
                f"{'.'.join(str(part) for part in item['loc']) or 'data'}: {item['msg']}"
                for item in error.errors()[:5]
            )
            raise PermanentSourceError(
                f"{where} answered data of an unexpected shape: {details}"
            ) from error


def _messages(errors: Any) -> str:
    if isinstance(errors, list):
        texts = [str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors]
        return "; ".join(texts)[:_SNIPPET_CHARS]
    return str(errors)[:_SNIPPET_CHARS]
