"""The ``snapshot`` governance source: the Snapshot hub's GraphQL API over aiohttp.

One query per page of 100 proposals, oldest first, filtered on the space and ``created_gte``;
each proposal brings its own vote count (``votes``) and voting power (``scores``,
``scores_total``), so no individual vote is downloaded. The first page also asks for the space
itself, to tell an unknown space (``space: null``) from a quiet one and to read its follower
count. Every answer is validated before it is trusted. The query is written against the hub's
published schema (``/work/shared/snapshot-hub/schema.gql``; ``tests/support/snapshot_hub.py``
validates it there).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Literal

import aiohttp
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recalculator.daos import DaoRef
from recalculator.governance.source import PermanentSourceError, TransientSourceError
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

    ``session`` is owned by the caller (one per process); ``timeout_s`` bounds each request.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        hub_url: str = DEFAULT_HUB_URL,
        timeout_s: float = 20.0,
        page_size: int = PAGE_SIZE,
        max_pages: int = MAX_PAGES,
    ) -> None:
        if timeout_s <= 0 or page_size < 1 or max_pages < 1:
            raise ValueError("timeout_s, page_size and max_pages must be positive")
        self._session = session
        self._endpoint = hub_url.rstrip("/") + "/graphql"
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._timeout_s = timeout_s
        self._page_size = page_size
        self._max_pages = max_pages

    async def fetch(self, dao: DaoRef, since: datetime) -> GovernanceData:
        """Returns ``dao``'s proposals created at or after ``since``, with the space's follower
        count. Raises ``PermanentSourceError`` for an unknown space or a bad answer, and
        ``TransientSourceError`` for timeouts, 5xx, 429 and connection failures. Read-only."""
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
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
            data = await self._post(dao, variables)
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

    async def _post(self, dao: DaoRef, variables: dict[str, Any]) -> Any:
        where = f"Snapshot hub {self._endpoint} (space {dao.snapshot_space!r}, DAO {dao.id})"
        payload = {"query": PROPOSALS_QUERY, "variables": variables}
        try:
            async with self._session.post(
                self._endpoint,
                json=payload,
                timeout=self._timeout,
                headers={"Accept": "application/json"},
            ) as response:
                status = response.status
                body = await response.read()
        except TimeoutError as error:
            raise TransientSourceError(
                f"{where} did not answer within {self._timeout_s:g}s"
            ) from error
        except aiohttp.ClientError as error:
            raise TransientSourceError(f"could not reach {where}: {error!r}") from error
        snippet = body[:_SNIPPET_CHARS].decode("utf-8", "replace")
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

    def _validate(self, dao: DaoRef, answer: Any, model: type[_Page] | type[_FirstPage]) -> _Page:
        where = f"Snapshot hub {self._endpoint} (space {dao.snapshot_space!r}, DAO {dao.id})"
        if not isinstance(answer, dict):
            raise PermanentSourceError(f"{where} answered a JSON {type(answer).__name__}")
        errors = answer.get("errors")
        if errors:
            raise PermanentSourceError(f"{where} answered GraphQL errors: {_messages(errors)}")
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
