"""A run's database steps: transient errors retried (until a bound, or for as long as it
takes), other errors raised at once."""

from __future__ import annotations

import asyncpg
import pytest

from recalculator.database_retry import DatabaseOutage, retry_transient


class Flaky:
    """Raises each scripted error in turn, then answers ``done``."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


async def test_an_outage_is_waited_out_and_the_step_tried_again() -> None:
    step = Flaky(
        asyncpg.exceptions.CannotConnectNowError("the database system is shutting down"),
        ConnectionRefusedError(111, "Connect call failed"),
        asyncpg.InterfaceError("cannot call Transaction.__aexit__(): connection is closed"),
        TimeoutError(),
    )
    result = await retry_transient(
        step, what="write", give_up_after_s=None, first_backoff_s=0.001, max_backoff_s=0.01
    )
    assert (result, step.calls) == ("done", 5)


async def test_a_bounded_step_gives_up_with_how_long_it_waited_and_the_last_error() -> None:
    step = Flaky(*[ConnectionRefusedError(111, "Connect call failed")] * 1000)
    with pytest.raises(DatabaseOutage, match=r"database unavailable for \d+s while trying to "):
        await retry_transient(
            step, what="write", give_up_after_s=0.05, first_backoff_s=0.001, max_backoff_s=0.01
        )
    assert 1 < step.calls < 1000


async def test_an_error_of_the_statement_is_not_retried() -> None:
    step = Flaky(asyncpg.exceptions.CheckViolationError("score out of range"))
    with pytest.raises(asyncpg.exceptions.CheckViolationError):
        await retry_transient(step, what="write", give_up_after_s=None, first_backoff_s=0.001)
    assert step.calls == 1
