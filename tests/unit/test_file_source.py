"""The file governance source: the ``as_of`` shift, the window, missing DAOs and bad files."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from recalculator.daos import DaoRecord, DaoRef
from recalculator.governance import FileSource, PermanentSourceError, make_source
from recalculator.governance.snapshot import SnapshotSource
from recalculator.scoring import score_governance

DATA = Path(__file__).resolve().parents[2] / "data"
AS_OF = datetime(2025, 1, 6, tzinfo=UTC)
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
AAVE = DaoRef(id="aave", name="Aave", snapshot_space="aave.eth")


def _proposal(proposal_id: str, created: datetime) -> dict[str, object]:
    return {
        "id": proposal_id,
        "created": created.isoformat(),
        "end": (created + timedelta(days=5)).isoformat(),
        "state": "closed",
        "votes": 12,
        "scores_total": 10.0,
        "choices": ["For", "Against"],
        "scores": [9.0, 1.0],
    }


def _write(tmp_path: Path, content: object) -> Path:
    path = tmp_path / "governance.json"
    path.write_text(json.dumps(content), encoding="utf-8")
    return path


@pytest.fixture
def governance_file(tmp_path: Path) -> Path:
    proposals = [
        _proposal("recent", AS_OF - timedelta(days=10)),
        _proposal("stale", AS_OF - timedelta(days=120)),
    ]
    daos = {"aave": {"followers_count": 500, "proposals": proposals}}
    return _write(tmp_path, {"as_of": AS_OF.isoformat(), "daos": daos})


async def test_times_are_shifted_so_as_of_becomes_now(governance_file: Path) -> None:
    source = FileSource(governance_file, clock=lambda: NOW)

    data = await source.fetch(AAVE, NOW - timedelta(days=90))

    [recent] = data.proposals
    assert (recent.id, recent.created) == ("recent", NOW - timedelta(days=10))
    assert recent.end == NOW - timedelta(days=5)
    assert data.followers_count == 500


async def test_proposals_created_before_since_are_left_out(governance_file: Path) -> None:
    source = FileSource(governance_file, clock=lambda: NOW)

    data = await source.fetch(AAVE, NOW - timedelta(days=200))

    assert sorted(p.id for p in data.proposals) == ["recent", "stale"]


async def test_without_as_of_times_are_taken_as_written(tmp_path: Path) -> None:
    created = datetime(2025, 5, 1, tzinfo=UTC)
    path = _write(tmp_path, {"daos": {"aave": {"proposals": [_proposal("p", created)]}}})

    data = await FileSource(path, clock=lambda: NOW).fetch(AAVE, created - timedelta(days=1))

    assert [p.created for p in data.proposals] == [created]


async def test_a_dao_missing_from_the_file_is_a_permanent_error(governance_file: Path) -> None:
    ens = DaoRef(id="ens", name="ENS", snapshot_space="ens.eth")
    expected = f"no governance data for DAO ens in {governance_file}"

    with pytest.raises(PermanentSourceError) as raised:
        await FileSource(governance_file).fetch(ens, NOW - timedelta(days=90))

    assert str(raised.value) == expected


async def test_the_file_is_read_once(governance_file: Path) -> None:
    source = FileSource(governance_file, clock=lambda: NOW)
    await source.fetch(AAVE, NOW - timedelta(days=90))
    await asyncio.to_thread(governance_file.unlink)

    data = await source.fetch(AAVE, NOW - timedelta(days=90))

    assert len(data.proposals) == 1


async def test_an_invalid_file_is_a_permanent_error_naming_the_field(tmp_path: Path) -> None:
    bad = _proposal("p", AS_OF) | {"votes": -1}
    path = _write(tmp_path, {"as_of": AS_OF.isoformat(), "daos": {"aave": {"proposals": [bad]}}})

    with pytest.raises(PermanentSourceError, match=r"daos\.aave\.proposals\.0\.votes"):
        await FileSource(path).fetch(AAVE, NOW - timedelta(days=90))


async def test_a_file_that_is_not_json_is_a_permanent_error(tmp_path: Path) -> None:
    path = tmp_path / "governance.json"
    path.write_text("{not json", encoding="utf-8")

    with pytest.raises(PermanentSourceError, match="is not valid"):
        await FileSource(path).fetch(AAVE, NOW - timedelta(days=90))


def _sample_daos() -> list[DaoRef]:
    rows = json.loads((DATA / "daos.sample.json").read_text(encoding="utf-8"))
    return [DaoRecord.model_validate(row).to_ref() for row in rows]


async def test_the_sample_covers_every_sample_dao_but_one_and_all_score() -> None:
    daos = await asyncio.to_thread(_sample_daos)
    source = FileSource(DATA / "governance.sample.json", clock=lambda: NOW)
    scored, missing = [], []
    for dao in daos:
        try:
            data = await source.fetch(dao, NOW - timedelta(days=90))
        except PermanentSourceError:
            missing.append(dao.id)
            continue
        scored.append(score_governance(data, now=NOW))

    assert len(missing) == 1
    assert all(0 < s.score <= 100 and s.proposals_considered > 0 for s in scored)
    assert len({s.score for s in scored}) > len(scored) // 2


def test_the_factory_builds_a_file_source(governance_file: Path) -> None:
    assert isinstance(make_source("file", data_path=governance_file), FileSource)


async def test_the_factory_builds_a_snapshot_source_on_the_given_session() -> None:
    async with aiohttp.ClientSession() as session:
        assert isinstance(make_source("snapshot", session=session), SnapshotSource)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "file"}, "GOVERNANCE_SOURCE=file needs GOVERNANCE_DATA"),
        ({"kind": "file", "data_path": Path("/nonexistent.json")}, "is not a file"),
        ({"kind": "snapshot"}, "needs an aiohttp session"),
        ({"kind": "ipfs"}, "GOVERNANCE_SOURCE='ipfs' is not one of: snapshot, file"),
    ],
)
def test_the_factory_refuses_a_bad_configuration_by_name(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        make_source(**kwargs)  # type: ignore[arg-type]
