"""DAO import rows and references: what is accepted, what is refused, and why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from recalculator.daos import DaoRecord, DaoRef

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "daos.sample.json"


def _row(**overrides: object) -> dict[str, object]:
    return {"id": "aave", "name": "Aave", "snapshot_space": "aave.eth", **overrides}


def test_a_row_without_active_is_active() -> None:
    assert DaoRecord.model_validate(_row()).active is True


@pytest.mark.parametrize(("text", "expected"), [("true", True), ("false", False), ("0", False)])
def test_csv_text_for_active_is_read_as_a_bool(text: str, expected: bool) -> None:
    assert DaoRecord.model_validate(_row(active=text)).active is expected


@pytest.mark.parametrize("dao_id", ["1inch", "uniswap", "a", "curve-dao", "a" * 63])
def test_slug_ids_are_accepted(dao_id: str) -> None:
    assert DaoRecord.model_validate(_row(id=dao_id)).id == dao_id


@pytest.mark.parametrize("dao_id", ["", "Aave", "-aave", "aave.eth", "aa ve", "a" * 64, "aave_v3"])
def test_ids_that_are_not_slugs_are_refused(dao_id: str) -> None:
    with pytest.raises(ValidationError, match="id"):
        DaoRecord.model_validate(_row(id=dao_id))


@pytest.mark.parametrize("name", ["", "   ", "x" * 201])
def test_empty_or_overlong_names_are_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="name"):
        DaoRecord.model_validate(_row(name=name))


def test_names_are_trimmed() -> None:
    assert DaoRecord.model_validate(_row(name="  Aave  ")).name == "Aave"


@pytest.mark.parametrize("space", ["uniswap", "aave.eth", "s:gnosis.eth", "lido-snapshot.eth"])
def test_snapshot_spaces_like_ens_names_are_accepted(space: str) -> None:
    assert DaoRecord.model_validate(_row(snapshot_space=space)).snapshot_space == space


@pytest.mark.parametrize("space", ["", "aave eth", "https://snapshot.org/#/aave.eth"])
def test_empty_or_malformed_snapshot_spaces_are_refused(space: str) -> None:
    with pytest.raises(ValidationError, match="snapshot_space"):
        DaoRecord.model_validate(_row(snapshot_space=space))


def test_an_unknown_column_is_refused_rather_than_ignored() -> None:
    with pytest.raises(ValidationError, match="snapshot-space"):
        DaoRecord.model_validate({"id": "aave", "name": "Aave", "snapshot-space": "aave.eth"})


def test_a_record_gives_the_reference_a_source_needs() -> None:
    record = DaoRecord.model_validate(_row(active=False))

    assert record.to_ref() == DaoRef(id="aave", name="Aave", snapshot_space="aave.eth")


def test_every_row_of_the_sample_file_is_valid_and_ids_are_unique() -> None:
    rows = json.loads(SAMPLE.read_text(encoding="utf-8"))

    records = [DaoRecord.model_validate(row) for row in rows]

    assert len({r.id for r in records}) == len(records) >= 12
