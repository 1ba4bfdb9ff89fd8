"""The one retry vocabulary: which database errors are transient, and retry_transient's loop."""

from __future__ import annotations

import functools
import logging

import asyncpg
import pytest

from chassis.retry import (
    DatabaseOutage,
    GaveUp,
    is_transient_database_error,
    retry_transient,
)


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


fast_retry = functools.partial(retry_transient, first_backoff_s=0.001, max_backoff_s=0.005)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.DeadlockDetectedError("deadlock detected"),
        asyncpg.exceptions.SerializationError("could not serialize access"),
        asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        asyncpg.InterfaceError("connection is closed"),
        asyncpg.exceptions.InternalClientError("cannot switch to state 15"),
        ConnectionRefusedError(111, "Connect call failed"),
        TimeoutError(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_an_outage_a_busy_server_or_a_lost_race_is_transient(error: Exception) -> None:
    assert is_transient_database_error(error)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.UniqueViolationError("duplicate key"),
        asyncpg.exceptions.CheckViolationError("score out of range"),
        asyncpg.exceptions.UndefinedTableError("relation does not exist"),
        asyncpg.exceptions.ClientConfigurationError("invalid DSN"),
        ValueError("not a number"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_wrong_statement_or_a_bad_setting_is_not_transient(error: Exception) -> None:
    assert not is_transient_database_error(error)


async def test_a_deadlock_is_retried_and_the_step_then_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    step = Flaky(asyncpg.exceptions.DeadlockDetectedError("deadlock detected"))
    retried: list[BaseException] = []
    with caplog.at_level(logging.INFO, logger="chassis.retry"):
        result = await fast_retry(
            step,
            what="store a batch",
            on_retry=retried.append,
            extra={"job_id": "j-1"},
        )
    assert (result, step.calls) == ("done", 2)
    assert [type(e).__name__ for e in retried] == ["DeadlockDetectedError"]
    warning, info = caplog.records
    assert warning.getMessage().startswith("cannot store a batch (attempt 1, retry in ")
    assert warning.getMessage().endswith("DeadlockDetectedError: deadlock detected")
    assert warning.__dict__["job_id"] == "j-1"
    assert info.getMessage() == "could store a batch after 1 retries"


async def test_an_outage_of_several_kinds_is_waited_out() -> None:
    step = Flaky(
        asyncpg.exceptions.CannotConnectNowError("the database system is shutting down"),
        ConnectionRefusedError(111, "Connect call failed"),
        asyncpg.InterfaceError("cannot call Transaction.__aexit__(): connection is closed"),
        TimeoutError(),
    )
    assert await fast_retry(step, what="write") == "done"
    assert step.calls == 5


async def test_a_unique_violation_is_raised_at_once_not_retried() -> None:
    step = Flaky(asyncpg.exceptions.UniqueViolationError("duplicate key value"))
    with pytest.raises(asyncpg.exceptions.UniqueViolationError):
        await fast_retry(step, what="write")
    assert step.calls == 1


async def test_giving_up_raises_the_named_error_with_how_long_and_the_last_error() -> None:
    refused = [ConnectionRefusedError(111, "refused")] * 3
    step = Flaky(*refused, *[asyncpg.exceptions.AdminShutdownError("the last one")] * 500)
    with pytest.raises(DatabaseOutage) as raised:
        await fast_retry(step, what="record the outcome", give_up_after_s=0.05)
    assert 1 < step.calls < 500
    assert isinstance(raised.value.__cause__, asyncpg.exceptions.AdminShutdownError)
    assert raised.value.last_error is raised.value.__cause__
    assert str(raised.value).startswith("database unavailable for 0s while trying to record")
    assert str(raised.value).endswith(": AdminShutdownError: the last one")


async def test_a_caller_may_name_its_own_give_up_error_and_transient_errors() -> None:
    class BrokerAway(GaveUp):
        condition = "broker unavailable"

    step = Flaky(*[KeyError("x")] * 500)
    with pytest.raises(BrokerAway, match=r"^broker unavailable for \d+s while trying to publish"):
        await fast_retry(
            step,
            what="publish",
            give_up_after_s=0.02,
            is_transient=lambda e: isinstance(e, KeyError),
            give_up_as=BrokerAway,
        )
