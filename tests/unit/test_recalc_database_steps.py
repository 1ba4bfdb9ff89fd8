"""A run's database steps wait out transient errors, each retry counted in the recalculator's
metric, and give up (when bounded) with the chassis's DatabaseOutage."""

from __future__ import annotations

import asyncpg
import pytest
from prometheus_client import REGISTRY

from chassis.retry import DatabaseOutage
from recalculator.dao_tasks import database_step


def retries_counted() -> float:
    return REGISTRY.get_sample_value("recalc_database_retries_total") or 0.0


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


async def test_each_retry_through_an_outage_is_counted_in_the_metric() -> None:
    step = Flaky(
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.DeadlockDetectedError("deadlock detected"),
    )
    before = retries_counted()
    assert await database_step(step, "write") == "done"
    assert (step.calls, retries_counted() - before) == (3, 2)


async def test_a_bounded_step_gives_up_with_a_database_outage() -> None:
    step = Flaky(*[ConnectionRefusedError(111, "Connect call failed")] * 1000)
    with pytest.raises(DatabaseOutage, match=r"database unavailable for \d+s while trying to "):
        await database_step(step, "write", give_up_after_s=0.3)


async def test_an_error_of_the_statement_is_not_retried_nor_counted() -> None:
    step = Flaky(asyncpg.exceptions.CheckViolationError("score out of range"))
    before = retries_counted()
    with pytest.raises(asyncpg.exceptions.CheckViolationError):
        await database_step(step, "write")
    assert (step.calls, retries_counted() - before) == (1, 0)


async def test_a_step_given_as_a_lambda_is_awaited_and_retried() -> None:
    step = Flaky(ConnectionResetError(104, "Connection reset by peer"))
    assert await database_step(lambda: step(), "write") == "done"
    assert step.calls == 2
