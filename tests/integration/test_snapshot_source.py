"""The Snapshot source against a loopback hub that validates queries with the real schema."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from graphql import parse, validate

from recalculator.daos import DaoRef
from recalculator.governance import PermanentSourceError, SnapshotSource, TransientSourceError
from recalculator.governance.snapshot import PROPOSALS_QUERY
from tests.support.snapshot_hub import Fault, HubSpace, SnapshotHub, hub_proposal, load_schema

NOW = datetime(2025, 6, 2, tzinfo=UTC)
SINCE = NOW - timedelta(days=90)
AAVE = DaoRef(id="aave", name="Aave", snapshot_space="aave.eth")


def _recent(space: str, count: int) -> list[dict[str, object]]:
    start = int(SINCE.timestamp()) + 3600
    return [
        hub_proposal(space, f"{space}-{i:03}", created=start + i * 1800, votes=i, scores_total=i)
        for i in range(count)
    ]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def hub() -> AsyncIterator[SnapshotHub]:
    old = hub_proposal("aave.eth", "aave-old", created=int(SINCE.timestamp()) - 86_400)
    spaces = [HubSpace("aave.eth", [*_recent("aave.eth", 250), old], followers_count=98_000)]
    async with SnapshotHub(spaces) as served:
        yield served


def _source(
    session: aiohttp.ClientSession, hub: SnapshotHub, timeout_s: float = 5
) -> SnapshotSource:
    return SnapshotSource(session, hub_url=hub.url, timeout_s=timeout_s)


def test_the_query_is_valid_against_the_published_hub_schema() -> None:
    assert validate(load_schema(), parse(PROPOSALS_QUERY)) == []


async def test_fetch_reads_every_page_of_the_recent_proposals(
    session: aiohttp.ClientSession, hub: SnapshotHub
) -> None:
    data = await _source(session, hub).fetch(AAVE, SINCE)

    assert sorted(p.id for p in data.proposals) == [f"aave.eth-{i:03}" for i in range(250)]
    assert data.followers_count == 98_000
    assert [q.variables["skip"] for q in hub.received] == [0, 100, 200]
    assert hub.validation_errors == []


async def test_fetch_converts_hub_proposals_to_the_domain_model(
    session: aiohttp.ClientSession, hub: SnapshotHub
) -> None:
    data = await _source(session, hub).fetch(AAVE, SINCE)

    first = min(data.proposals, key=lambda p: p.created)
    assert first.created == SINCE + timedelta(hours=1)
    assert first.end == first.created + timedelta(days=5)
    assert (first.state, first.choices, first.scores) == (
        "closed",
        ("For", "Against", "Abstain"),
        (80.0, 20.0, 0.0),
    )


async def test_the_hub_rejects_a_query_the_schema_does_not_allow(
    session: aiohttp.ClientSession, hub: SnapshotHub
) -> None:
    # Guards the meaning of "zero validation errors": the hub does validate.
    async with session.post(hub.url + "/graphql", json={"query": "{ proposals { nope } }"}) as r:
        assert r.status == 400
    [error] = hub.validation_errors
    assert error.startswith("Cannot query field 'nope' on type 'Proposal'.")


async def test_an_unknown_space_is_a_permanent_error(
    session: aiohttp.ClientSession, hub: SnapshotHub
) -> None:
    ghost = DaoRef(id="ghost", name="Ghost", snapshot_space="ghost.eth")
    with pytest.raises(PermanentSourceError, match="'ghost.eth' of DAO ghost does not exist"):
        await _source(session, hub).fetch(ghost, SINCE)


async def test_a_hanging_hub_is_transient_within_the_timeout(
    session: aiohttp.ClientSession, hub: SnapshotHub
) -> None:
    hub.misbehave("aave.eth", Fault.HANG)
    started = time.monotonic()
    with pytest.raises(TransientSourceError, match="did not answer within 0.3s"):
        await _source(session, hub, timeout_s=0.3).fetch(AAVE, SINCE)
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    ("fault", "error", "message"),
    [
        pytest.param(
            Fault.SERVER_ERROR, TransientSourceError, "answered HTTP 500", id="server-error"
        ),
        pytest.param(
            Fault.MALFORMED_JSON, PermanentSourceError, "malformed JSON", id="malformed-json"
        ),
        pytest.param(
            Fault.WRONG_SHAPE, PermanentSourceError, "unexpected shape: proposals", id="wrong-shape"
        ),
    ],
)
async def test_a_server_error_is_transient_and_a_bad_answer_permanent(
    session: aiohttp.ClientSession,
    hub: SnapshotHub,
    fault: Fault,
    error: type[Exception],
    message: str,
) -> None:
    hub.misbehave("aave.eth", fault)
    with pytest.raises(error, match=message):
        await _source(session, hub).fetch(AAVE, SINCE)


async def test_a_fault_limited_in_times_clears_so_a_retry_succeeds(
    session: aiohttp.ClientSession, hub: SnapshotHub
) -> None:
    hub.misbehave("aave.eth", Fault.SERVER_ERROR, times=1)
    source = _source(session, hub)
    with pytest.raises(TransientSourceError):
        await source.fetch(AAVE, SINCE)

    data = await source.fetch(AAVE, SINCE)

    assert len(data.proposals) == 250


async def test_an_unreachable_hub_is_transient(session: aiohttp.ClientSession) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    source = SnapshotSource(session, hub_url=f"http://127.0.0.1:{port}", timeout_s=2)
    with pytest.raises(TransientSourceError, match="could not reach Snapshot hub"):
        await source.fetch(AAVE, SINCE)
