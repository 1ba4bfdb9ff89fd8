"""JobFinished's payload under the status rule."""

from __future__ import annotations

import pytest

from contracts import Failure
from contracts.events import MAX_ERROR_CHARS
from recalculator.status_rule import finished_payload


def failures(count: int, error: str = "boom") -> list[Failure]:
    return [Failure(dao_id=f"dao-{i}", dao_name=f"DAO {i}", error=error) for i in range(count)]


@pytest.mark.parametrize(
    ("total", "failed", "status"),
    [
        (50, 12, "completed"),
        (50, 25, "completed"),
        (50, 26, "failed"),
        (50, 30, "failed"),
        (1, 1, "failed"),
        (0, 0, "completed"),
    ],
)
def test_the_job_fails_when_more_than_half_of_the_daos_failed(
    total: int, failed: int, status: str
) -> None:
    payload = finished_payload(
        daos_total=total,
        daos_processed=total - failed,
        daos_failed=failed,
        failures=failures(failed),
        duration_ms=5,
        cache_invalidated=False,
        fatal_error=None,
        scope="all",
    )
    assert (payload.status, payload.daos_failed, payload.daos_processed) == (
        status,
        failed,
        total - failed,
    )


def test_a_fatal_error_fails_the_job_whatever_the_counts() -> None:
    payload = finished_payload(
        daos_total=10,
        daos_processed=10,
        daos_failed=0,
        failures=[],
        duration_ms=5,
        cache_invalidated=True,
        fatal_error="x" * 5000,
        scope="subset",
    )
    assert payload.status == "failed"
    assert payload.fatal_error is not None
    assert len(payload.fatal_error) == MAX_ERROR_CHARS
    assert payload.fatal_error.endswith("[truncated]")


def test_only_the_first_hundred_failures_are_carried() -> None:
    payload = finished_payload(
        daos_total=300,
        daos_processed=50,
        daos_failed=250,
        failures=failures(250),
        duration_ms=5,
        cache_invalidated=False,
        fatal_error=None,
        scope="all",
    )
    assert payload.daos_failed == 250
    assert [f.dao_id for f in payload.failures] == [f"dao-{i}" for i in range(100)]
