"""Query parameters: strict parsing, a 400 for anything malformed, never an exception leak."""

from __future__ import annotations

import uuid

import pytest

from job_ledger.web.errors import ApiError
from job_ledger.web.params import MAX_OFFSET, parse_job_name, parse_limit, parse_offset, parse_uuid


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, 30), ("1", 1), ("030", 30), ("100", 100), ("500", 100), ("9" * 5000, 100)],
)
def test_limit_is_a_positive_whole_number_capped_at_100(raw: str | None, expected: int) -> None:
    assert parse_limit(raw) == expected


@pytest.mark.parametrize("raw", ["abc", "-1", "0", "000", "1.5", "+3", " 3", "", "３", "1e2"])
def test_anything_else_as_limit_is_a_400(raw: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_limit(raw)
    assert caught.value.status == 400


def test_offset_accepts_zero_and_caps_huge_values() -> None:
    assert (parse_offset(None), parse_offset("0"), parse_offset("9" * 40)) == (0, 0, MAX_OFFSET)
    with pytest.raises(ApiError):
        parse_offset("-5")


def test_ids_must_be_uuids() -> None:
    value = uuid.uuid4()
    assert parse_uuid(str(value)) == value
    for raw in ("not-a-uuid", "", "123", str(value) + "0"):
        with pytest.raises(ApiError) as caught:
            parse_uuid(raw)
        assert (caught.value.status, caught.value.message) == (400, "id must be a UUID")


def test_job_names_follow_the_contract_pattern() -> None:
    assert parse_job_name("weekly-gvs-recalculation") == "weekly-gvs-recalculation"
    assert parse_job_name(None) is None
    for raw in ("", "Weekly", "a.b", "a b", "#", "x" * 101):
        with pytest.raises(ApiError):
            parse_job_name(raw)
