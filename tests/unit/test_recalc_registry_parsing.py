"""Import files: every bad row reported by its line, JSON or CSV, before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from recalculator.registry import ImportRejected, parse_import

FILE = Path("daos.json")


def test_a_valid_json_list_gives_one_record_per_object() -> None:
    text = """[
  {"id": "aave", "name": "Aave", "snapshot_space": "aave.eth"},
  {"id": "ens", "name": " ENS ", "snapshot_space": "ens.eth", "active": false}
]"""
    records = parse_import(FILE, text)
    assert [(r.id, r.name, r.active) for r in records] == [
        ("aave", "Aave", True),
        ("ens", "ENS", False),
    ]


def test_every_bad_json_row_is_reported_with_the_line_it_starts_on() -> None:
    text = """[
  {"id": "aave", "name": "Aave", "snapshot_space": "aave.eth"},
  {"id": "Not A Slug", "name": "X", "snapshot_space": "x.eth"},
  {
    "id": "ens",
    "name": "ENS",
    "snapshot_space": "ens eth"
  },
  {"id": "aave", "name": "Aave again", "snapshot_space": "aave.eth"},
  "just a string"
]"""
    with pytest.raises(ImportRejected) as info:
        parse_import(FILE, text)
    lines = [(e.line, e.message) for e in info.value.errors]
    assert [line for line, _ in lines] == [3, 4, 9, 10]
    assert "id: String should match pattern" in lines[0][1]
    assert "snapshot_space" in lines[1][1]
    assert "'aave' already given on line 2" in lines[2][1]
    assert "expected an object, got str" in lines[3][1]


def test_a_misspelt_column_is_refused_not_ignored() -> None:
    text = "id,name,snapshot-space,active\naave,Aave,aave.eth,true\n"
    with pytest.raises(ImportRejected) as info:
        parse_import(Path("daos.csv"), text)
    [error] = info.value.errors
    assert error.line == 2
    assert "snapshot-space: Extra inputs are not permitted" in error.message


def test_csv_rows_are_numbered_by_file_line_and_blank_active_means_active() -> None:
    text = (
        "id,name,snapshot_space,active\n"
        "aave,Aave,aave.eth,\n"
        "ens,ENS,ens.eth,no\n"
        "lido,Lido,lido.eth,maybe\n"
        "curve,Curve,curve.eth,true,extra\n"
    )
    with pytest.raises(ImportRejected) as info:
        parse_import(Path("daos.csv"), text)
    assert [(e.line, e.message.split(":")[0]) for e in info.value.errors] == [
        (4, "active"),
        (5, "more values than header columns"),
    ]


def test_a_csv_with_quoted_newlines_keeps_later_line_numbers_right() -> None:
    text = 'id,name,snapshot_space,active\naave,"Aave\nProtocol",aave.eth,true\nBAD,x,x.eth,true\n'
    with pytest.raises(ImportRejected) as info:
        parse_import(Path("daos.csv"), text)
    assert [e.line for e in info.value.errors] == [4]


@pytest.mark.parametrize(
    ("text", "line", "says"),
    [
        ('{"id": "aave"}', 1, "expected a JSON list"),
        ('[\n  {"id": "aave",}\n]', 2, "invalid JSON"),
        ('[{"id": "a", "name": "A", "snapshot_space": "a.eth"}] trailing', 1, "unexpected text"),
        ("", 1, "empty"),
    ],
)
def test_a_file_that_is_not_a_list_or_a_table_is_rejected_whole(
    text: str, line: int, says: str
) -> None:
    with pytest.raises(ImportRejected) as info:
        parse_import(FILE, text)
    [error] = info.value.errors
    assert error.line == line
    assert says in error.message


def test_an_empty_json_list_imports_nothing() -> None:
    assert parse_import(FILE, " [ ] ") == []
