"""A Snapshot hub on loopback for tests: real HTTP, the real GraphQL schema, fixture data.

``SnapshotHub`` serves ``POST /graphql`` on 127.0.0.1 with an executable schema built by
graphql-core from the hub's published ``schema.gql``. Every query is parsed and validated
against that schema first; an invalid one gets HTTP 400 with GraphQL ``errors``, as the real hub
answers, and is recorded, so a test can assert that our queries are ones the hub accepts.
``proposals`` and ``space`` resolve from in-memory ``HubSpace`` fixtures; any other field
resolves to nothing.

Per space it can be told to misbehave (``misbehave(space, Fault.HANG, times=2)``): answer
HTTP 500, hang past the client's timeout, answer malformed JSON, answer data of the wrong
shape, or refuse with 429 (rate limited) or 503 (unavailable), with a ``Retry-After`` header
when given one (``misbehave(space, Fault.RATE_LIMITED, times=1, retry_after="2")``), on every
request or on the next ``times`` requests only (to test retries). Each ``ReceivedQuery``
keeps when it arrived (``time.monotonic()``, the clock of asyncio's loop) and its headers::

    aave = HubSpace("aave.eth", proposals=[hub_proposal("aave.eth", "p1")])
    async with SnapshotHub([aave]) as hub:
        source = SnapshotSource(session, hub_url=hub.url, timeout_s=1)
        data = await source.fetch(DaoRef(id="aave", name="Aave", snapshot_space="aave.eth"), since)
        assert hub.validation_errors == []
"""

from __future__ import annotations

import asyncio
import enum
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from aiohttp import web
from graphql import (
    GraphQLError,
    GraphQLResolveInfo,
    GraphQLSchema,
    build_schema,
    execute_sync,
    parse,
    validate,
)

_REPO = Path(__file__).resolve().parents[2]
SCHEMA_CANDIDATES = (
    _REPO / "tests" / "support" / "snapshot-hub" / "schema.gql",
    _REPO.parent / "shared" / "snapshot-hub" / "schema.gql",
)
"""Where the hub's published schema is looked for: vendored into the repo, or beside it."""

MAX_FIRST = 1000
"""The real hub refuses ``first`` above this, with the message below."""

_SUPPORTED_WHERE = frozenset(
    {"space", "space_in", "id", "id_in", "state", "created_gte", "created_gt", "created_lt"}
    | {"created_lte"}
)


class Fault(enum.Enum):
    """A way the hub can misbehave for one space."""

    SERVER_ERROR = "server_error"
    HANG = "hang"
    MALFORMED_JSON = "malformed_json"
    WRONG_SHAPE = "wrong_shape"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class HubSpace:
    """A space the hub knows, with its proposals in the hub's wire shape (see ``hub_proposal``)."""

    id: str
    proposals: Sequence[Mapping[str, Any]] = ()
    followers_count: int | None = None


@dataclass(frozen=True)
class ReceivedQuery:
    """One request the hub received, and what it made of it."""

    query: str
    variables: Mapping[str, Any]
    validation_errors: tuple[str, ...]
    spaces: tuple[str, ...]
    status: int
    fault: Fault | None
    at: float = 0.0
    """When it arrived, by ``time.monotonic()`` (the event loop's clock)."""
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class _FaultPlan:
    fault: Fault
    remaining: int | None
    retry_after: str | None = None


@dataclass
class _Context:
    spaces: list[str] = field(default_factory=list)


def hub_proposal(
    space: str,
    proposal_id: str,
    *,
    created: int = 1_700_000_000,
    end: int | None = None,
    state: str = "closed",
    votes: int | None = 10,
    scores_total: float | None = 100.0,
    choices: Sequence[str] = ("For", "Against", "Abstain"),
    scores: Sequence[float] | None = (80.0, 20.0, 0.0),
    **extra: Any,
) -> dict[str, Any]:
    """Returns a proposal as the hub stores it, with every non-null field of the schema's
    ``Proposal`` filled in, so that any valid query can select any field."""
    return {
        "id": proposal_id,
        "ipfs": f"bafy{proposal_id}",
        "author": "0x0000000000000000000000000000000000000001",
        "created": created,
        "updated": created,
        "space": {"id": space, "name": space, "created": 1_600_000_000},
        "network": "1",
        "symbol": "VOTE",
        "type": "single-choice",
        "strategies": [],
        "plugins": {},
        "title": f"Proposal {proposal_id}",
        "body": "",
        "discussion": "",
        "choices": list(choices),
        "labels": [],
        "start": created,
        "end": end if end is not None else created + 5 * 86_400,
        "quorum": 0.0,
        "quorumType": "default",
        "state": state,
        "votes": votes,
        "scores_total": scores_total,
        "scores": list(scores) if scores is not None else None,
        "scores_state": "final" if state == "closed" else "pending",
        "flagged": False,
        **extra,
    }


def load_schema() -> GraphQLSchema:
    """Returns the executable schema built from the hub's ``schema.gql``.
    Raises ``FileNotFoundError`` naming the places it looked."""
    for candidate in SCHEMA_CANDIDATES:
        if candidate.is_file():
            return build_schema(candidate.read_text(encoding="utf-8"))
    looked = ", ".join(str(c) for c in SCHEMA_CANDIDATES)
    raise FileNotFoundError(f"Snapshot hub schema.gql not found; looked in {looked}")


class _Root:
    """The ``Query`` root: graphql-core's default resolver calls these with the arguments."""

    def __init__(self, hub: SnapshotHub) -> None:
        self._hub = hub

    def space(self, info: GraphQLResolveInfo[_Context], id: str) -> dict[str, Any] | None:
        info.context.spaces.append(id)
        known = self._hub.spaces.get(id)
        if known is None:
            return None
        return {
            "id": known.id,
            "name": known.id,
            "followersCount": known.followers_count,
            "proposalsCount": len(known.proposals),
            "created": 1_600_000_000,
        }

    def proposals(
        self,
        info: GraphQLResolveInfo[_Context],
        first: int,
        skip: int,
        where: Mapping[str, Any] | None = None,
        orderBy: str | None = None,
        orderDirection: str | None = None,
    ) -> list[Mapping[str, Any]]:
        if first > MAX_FIRST:
            raise GraphQLError(f"The `first` argument must not be greater than {MAX_FIRST}")
        where = dict(where or {})
        unsupported = set(where) - _SUPPORTED_WHERE
        if unsupported:
            raise GraphQLError(f"the test hub does not filter on {sorted(unsupported)}")
        wanted = [where["space"]] if "space" in where else list(where.get("space_in") or [])
        info.context.spaces.extend(wanted)
        spaces = wanted or list(self._hub.spaces)
        rows = [
            p
            for space in spaces
            if space in self._hub.spaces
            for p in self._hub.spaces[space].proposals
            if _matches(p, where)
        ]
        key = orderBy or "created"
        rows.sort(key=lambda p: (p.get(key), p["id"]), reverse=(orderDirection or "desc") == "desc")
        return rows[skip : skip + first]


def _matches(proposal: Mapping[str, Any], where: Mapping[str, Any]) -> bool:
    created = proposal["created"]
    checks = (
        "id" not in where or proposal["id"] == where["id"],
        "id_in" not in where or proposal["id"] in where["id_in"],
        "state" not in where or proposal["state"] == where["state"],
        "created_gte" not in where or created >= where["created_gte"],
        "created_gt" not in where or created > where["created_gt"],
        "created_lt" not in where or created < where["created_lt"],
        "created_lte" not in where or created <= where["created_lte"],
    )
    return all(checks)


class SnapshotHub:
    """The loopback hub. ``async with SnapshotHub(spaces) as hub:`` serves at ``hub.url``
    (the base URL; the endpoint is ``hub.url + "/graphql"``) until the block ends, answering
    each request ``latency_s`` later than it could."""

    def __init__(
        self, spaces: Iterable[HubSpace] = (), *, hang_s: float = 30.0, latency_s: float = 0.0
    ) -> None:
        self.spaces: dict[str, HubSpace] = {space.id: space for space in spaces}
        self.received: list[ReceivedQuery] = []
        self.latency_s = latency_s
        """How long the hub waits before it handles each request, as a distant hub would."""
        self._hang_s = hang_s
        self._faults: dict[str, _FaultPlan] = {}
        self._schema = load_schema()
        self._root = _Root(self)
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the hub is not serving; use it inside `async with`")
        return self._url

    @property
    def validation_errors(self) -> list[str]:
        """Every validation error of every query received, in order."""
        return [error for query in self.received for error in query.validation_errors]

    def misbehave(
        self, space: str, fault: Fault, *, times: int | None = None, retry_after: str | None = None
    ) -> None:
        """Makes requests touching ``space`` fail with ``fault``: always, or ``times`` times;
        ``retry_after`` is the ``Retry-After`` header of a 429 or 503, as sent."""
        self._faults[space] = _FaultPlan(fault, times, retry_after)

    def behave(self, space: str) -> None:
        self._faults.pop(space, None)

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post("/graphql", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self._url = f"http://{host}:{port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Release hanging handlers first, or the shutdown would wait for them.
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = None
        self._url = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        arrived = (time.monotonic(), dict(request.headers))
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        try:
            body = json.loads(await request.read())
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return self._record_invalid("", {}, ["Must provide query string."], arrived)
        query: str = body["query"]
        variables = body.get("variables") or {}
        try:
            document = parse(query)
        except GraphQLError as error:
            return self._record_invalid(query, variables, [error.message], arrived)
        errors = validate(self._schema, document)
        if errors:
            return self._record_invalid(query, variables, [e.message for e in errors], arrived)
        context = _Context()
        result = execute_sync(
            self._schema,
            document,
            root_value=self._root,
            context_value=context,
            variable_values=variables,
            operation_name=body.get("operationName"),
        )
        plan = self._take_fault(context.spaces)
        fault = plan.fault if plan else None
        response = await self._answer(plan, result.formatted)
        spaces = tuple(context.spaces)
        self.received.append(
            ReceivedQuery(query, variables, (), spaces, response.status, fault, *arrived)
        )
        return response

    def _record_invalid(
        self,
        query: str,
        variables: Mapping[str, Any],
        messages: list[str],
        arrived: tuple[float, dict[str, str]],
    ) -> web.Response:
        errors = tuple(messages)
        self.received.append(ReceivedQuery(query, variables, errors, (), 400, None, *arrived))
        return web.json_response({"errors": [{"message": m} for m in messages]}, status=400)

    def _take_fault(self, spaces: Sequence[str]) -> _FaultPlan | None:
        for space in spaces:
            plan = self._faults.get(space)
            if plan is None:
                continue
            if plan.remaining is not None:
                plan.remaining -= 1
                if plan.remaining <= 0:
                    del self._faults[space]
            return plan
        return None

    async def _answer(self, plan: _FaultPlan | None, formatted: Mapping[str, Any]) -> web.Response:
        fault = plan.fault if plan else None
        if plan is not None and fault in (Fault.RATE_LIMITED, Fault.UNAVAILABLE):
            status = 429 if fault is Fault.RATE_LIMITED else 503
            headers = {"Retry-After": plan.retry_after} if plan.retry_after is not None else {}
            return web.Response(status=status, text="slow down", headers=headers)
        if fault is Fault.SERVER_ERROR:
            return web.Response(status=500, text="Internal Server Error")
        if fault is Fault.MALFORMED_JSON:
            return web.Response(
                text='{"data": {"proposals": [{"id": "0x', content_type="application/json"
            )
        if fault is Fault.WRONG_SHAPE:
            return web.json_response({"data": {"proposals": {"items": "not a list"}}})
        if fault is Fault.HANG:
            try:
                await asyncio.wait_for(self._closing.wait(), self._hang_s)
            except TimeoutError:
                pass  # hung for hang_s; now answer normally, as a slow hub would
            if self._closing.is_set():
                return web.Response(status=503, text="shutting down")
        return web.json_response(formatted)
