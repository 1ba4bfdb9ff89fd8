"""One DAO's fetch: a timeout per attempt, transient errors retried twice, permanent ones not."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from recalculator.daos import DaoRef
from recalculator.fetching import DaoFetchFailed, RetryPolicy, fetch_with_retries
from recalculator.governance import PermanentSourceError, TransientSourceError
from recalculator.scoring import GovernanceData

DAO = DaoRef(id="aave", name="Aave", snapshot_space="aave.eth")
SINCE = datetime(2025, 3, 1, tzinfo=UTC)
FAST = RetryPolicy(timeout_s=0.2, retries=2, backoff_s=0.01)


class ScriptedSource:
    """Answers each fetch with the next scripted step: an exception to raise, "hang", or data."""

    def __init__(self, *steps: Exception | str) -> None:
        self.steps = list(steps)
        self.calls = 0

    async def fetch(self, dao: DaoRef, since: datetime) -> GovernanceData:
        self.calls += 1
        step = self.steps.pop(0) if self.steps else "ok"
        if isinstance(step, Exception):
            raise step
        if step == "hang":
            await asyncio.sleep(60)
        return GovernanceData(dao_id=dao.id)


async def test_transient_errors_are_retried_until_an_attempt_succeeds() -> None:
    source = ScriptedSource(TransientSourceError("HTTP 500"), "hang")
    fetched = await fetch_with_retries(source, DAO, SINCE, FAST)
    assert (fetched.attempts, source.calls, fetched.data.dao_id) == (3, 3, "aave")


async def test_a_dao_fails_after_two_retries_with_the_last_error() -> None:
    source = ScriptedSource(*[TransientSourceError(f"HTTP 50{i}") for i in range(5)])
    with pytest.raises(DaoFetchFailed) as info:
        await fetch_with_retries(source, DAO, SINCE, FAST)
    assert (info.value.attempts, info.value.error) == (3, "HTTP 502")


async def test_a_hanging_source_is_cut_at_the_timeout_and_counts_as_transient() -> None:
    source = ScriptedSource("hang", "hang", "hang")
    started = asyncio.get_running_loop().time()
    with pytest.raises(DaoFetchFailed, match=r"not fetched within 0\.2s") as info:
        await fetch_with_retries(source, DAO, SINCE, FAST)
    assert info.value.attempts == 3
    assert asyncio.get_running_loop().time() - started < 2


async def test_a_permanent_error_is_not_retried() -> None:
    source = ScriptedSource(PermanentSourceError("unknown space"))
    with pytest.raises(DaoFetchFailed) as info:
        await fetch_with_retries(source, DAO, SINCE, FAST)
    assert (info.value.attempts, info.value.error, source.calls) == (1, "unknown space", 1)


async def test_a_bug_in_a_source_is_not_mistaken_for_a_dao_failure() -> None:
    source = ScriptedSource(KeyError("proposals"))
    with pytest.raises(KeyError):
        await fetch_with_retries(source, DAO, SINCE, FAST)
