"""A good citizen of the Snapshot hub, against the loopback hub: requests paced by one shared
limiter (pages and retries count), the API key on every request and nowhere else, and the
hub's Retry-After honoured within the DAO's time budget."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp
import pytest
from pydantic import SecretStr

from chassis.settings import load_settings
from recalculator.bootstrap import bootstrap
from recalculator.config import Settings
from recalculator.daos import DaoRef
from recalculator.fetching import DaoFetchFailed, Fetched, RetryPolicy, fetch_with_retries
from recalculator.governance import SlidingWindowLimiter, SnapshotSource
from recalculator.run import RunRequest
from tests.harness.stack import Stack
from tests.support.recalc import hub_spaces, seed_daos, space_of
from tests.support.snapshot_hub import Fault, HubSpace, ReceivedQuery, SnapshotHub, hub_proposal

KEY = "sk-chainsights-test-4f9a1c"
SINCE = datetime.now(UTC) - timedelta(days=90)
BUDGET_MESSAGE = "ran out of its time budget waiting for the hub's Retry-After"


def _space(space: str, count: int) -> HubSpace:
    start = int(SINCE.timestamp()) + 3600
    rows = [hub_proposal(space, f"{space}-{i:03}", created=start + i * 60) for i in range(count)]
    return HubSpace(space, rows, followers_count=10)


def _dao(space: str) -> DaoRef:
    return DaoRef(id=space.removesuffix(".eth"), name=space, snapshot_space=space)


def _policy(timeout_s: float = 10.0, retries: int = 2) -> RetryPolicy:
    # A backoff far shorter than any Retry-After used here, so that a wait of the hub's length
    # can only come from honouring it.
    return RetryPolicy(timeout_s=timeout_s, retries=retries, backoff_s=0.05)


def _http_date(ahead: timedelta) -> str:
    return format_datetime(datetime.now(UTC) + ahead, usegmt=True)


def _key_of(query: ReceivedQuery) -> str | None:
    return {name.lower(): value for name, value in query.headers.items()}.get("x-api-key")


def _of(hub: SnapshotHub, space: str) -> list[ReceivedQuery]:
    return [q for q in hub.received if space in q.spaces]


def _busiest_window(times: Sequence[float], window_s: float) -> int:
    ordered = sorted(times)
    return max(
        sum(1 for t in ordered[i:] if t - start < window_s) for i, start in enumerate(ordered)
    )


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.mark.parametrize(
    ("fault", "retry_after", "at_least_s"),
    [
        (Fault.RATE_LIMITED, lambda: "2", 2.0),
        # An HTTP-date has whole seconds: 3 s ahead of now is about 2 s ahead or more.
        (Fault.UNAVAILABLE, lambda: _http_date(timedelta(seconds=3)), 1.9),
    ],
    ids=["429-seconds", "503-http-date"],
)
async def test_a_refused_space_is_fetched_after_waiting_what_its_retry_after_asks(
    session: aiohttp.ClientSession,
    fault: Fault,
    retry_after: Callable[[], str],
    at_least_s: float,
) -> None:
    async with SnapshotHub([_space("aave.eth", 150)]) as hub:
        hub.misbehave("aave.eth", fault, times=1, retry_after=retry_after())
        source = SnapshotSource(session, hub_url=hub.url, timeout_s=5)
        fetched = await fetch_with_retries(source, _dao("aave.eth"), SINCE, _policy())

    assert len(fetched.data.proposals) == 150
    assert fetched.attempts == 1, "the wait is spent inside the attempt, not as a retry"
    refused, again, second_page = hub.received
    assert refused.status in (429, 503) and again.status == second_page.status == 200
    assert again.variables["skip"] == 0 and second_page.variables["skip"] == 100
    assert again.at - refused.at >= at_least_s


async def test_no_window_holds_more_requests_than_the_rate_across_concurrent_daos(
    session: aiohttp.ClientSession,
) -> None:
    spaces = [_space(f"dao-{i:02}.eth", 250 if i % 3 == 0 else 20) for i in range(15)]
    async with SnapshotHub(spaces) as hub:
        hub.misbehave("dao-01.eth", Fault.SERVER_ERROR, times=2)  # two retries
        hub.misbehave("dao-02.eth", Fault.RATE_LIMITED, times=1, retry_after="0")
        source = SnapshotSource(
            session, hub_url=hub.url, timeout_s=10, limiter=SlidingWindowLimiter(20, period_s=1.0)
        )
        slots = asyncio.Semaphore(8)

        async def one(space: HubSpace) -> Fetched:
            async with slots:
                return await fetch_with_retries(source, _dao(space.id), SINCE, _policy())

        fetched = await asyncio.gather(*(one(space) for space in spaces))

    assert [len(f.data.proposals) for f in fetched] == [len(s.proposals) for s in spaces]
    pages = 5 * 3 + 10 * 1
    assert len(hub.received) == pages + 2 + 1, "every page, retry and re-ask went to the hub"
    # Arrival times on the server side: a request delayed on its way may land a few ms closer
    # to the next window's than it left, hence the margin.
    assert _busiest_window([q.at for q in hub.received], 1.0 - 0.05) <= 20
    assert max(q.at for q in hub.received) - min(q.at for q in hub.received) >= 1.0


async def test_a_retry_after_beyond_the_attempts_budget_fails_the_dao_at_once_saying_so(
    session: aiohttp.ClientSession,
) -> None:
    async with SnapshotHub([_space("aave.eth", 5)]) as hub:
        hub.misbehave("aave.eth", Fault.RATE_LIMITED, retry_after="30")
        source = SnapshotSource(session, hub_url=hub.url, timeout_s=5)
        started = time.monotonic()
        with pytest.raises(DaoFetchFailed) as raised:
            await fetch_with_retries(source, _dao("aave.eth"), SINCE, _policy(timeout_s=2))

    assert time.monotonic() - started < 1.0, "no point in waiting for what cannot fit"
    assert BUDGET_MESSAGE in raised.value.error
    assert "HTTP 429 asking to wait 30s" in raised.value.error
    assert raised.value.attempts == 1, "retrying sooner would ignore the hub"
    assert len(hub.received) == 1


async def test_every_request_carries_the_key_and_no_log_line_or_error_does(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    spaces = [_space("aave.eth", 120), _space("uni.eth", 3), _space("busy.eth", 3)]
    async with SnapshotHub(spaces) as hub:
        hub.misbehave("aave.eth", Fault.RATE_LIMITED, times=1, retry_after="0")
        hub.misbehave("uni.eth", Fault.SERVER_ERROR)
        hub.misbehave("busy.eth", Fault.RATE_LIMITED, retry_after="60")
        source = SnapshotSource(session, hub_url=hub.url, timeout_s=5, api_key=SecretStr(KEY))
        outcomes = await asyncio.gather(
            *(
                fetch_with_retries(source, _dao(s), SINCE, _policy(timeout_s=2))
                for s in ("aave.eth", "uni.eth", "busy.eth", "gone.eth")
            ),
            return_exceptions=True,
        )
        keyless = SnapshotSource(session, hub_url=hub.url, timeout_s=5)
        await keyless.fetch(_dao("aave.eth"), SINCE)

    with_key, without_key = hub.received[:-2], hub.received[-2:]
    assert len(with_key) == 2 + 1 + 3 + 1 + 1
    assert [_key_of(q) for q in with_key] == [KEY] * len(with_key)
    assert [_key_of(q) for q in without_key] == [None, None]
    assert isinstance(outcomes[0], Fetched)
    errors = [str(o) for o in outcomes[1:]]
    assert all(isinstance(o, DaoFetchFailed) for o in outcomes[1:])
    assert any(BUDGET_MESSAGE in e for e in errors) and any("HTTP 500" in e for e in errors)
    assert caplog.records, "the waits and retries were logged"
    assert all(KEY not in r.getMessage() for r in caplog.records)
    assert all(KEY not in e for e in errors)
    settings = load_settings(Settings, snapshot_api_key=KEY)
    assert KEY not in repr(settings) and KEY not in str(settings.model_dump())


async def test_a_run_scores_a_rate_limited_dao_after_waiting_with_the_key_on_every_request(
    stack: Stack,
) -> None:
    await seed_daos(stack.recalc_settings(), 3)
    async with SnapshotHub(hub_spaces(3)) as hub:
        hub.misbehave(space_of(1), Fault.RATE_LIMITED, times=1, retry_after="2")
        settings = stack.recalc_settings(
            snapshot_hub_url=hub.url,
            snapshot_api_key=KEY,
            snapshot_rate_limit=600,
            dao_timeout="10s",
        )
        async with bootstrap(settings) as app:
            outcome = await app.recalculation.run(RunRequest("weekly-gvs-recalculation", "manual"))
            scored = await app.pool.fetch("SELECT dao_id FROM gvs_scores ORDER BY dao_id")

    assert outcome.status == "completed"
    assert [r["dao_id"] for r in scored] == ["dao-00", "dao-01", "dao-02"]
    refused, again = _of(hub, space_of(1))
    assert (refused.status, again.status) == (429, 200)
    assert again.at - refused.at >= 2.0
    assert [_key_of(q) for q in hub.received] == [KEY] * 4
