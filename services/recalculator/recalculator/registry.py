"""The DAO registry: import a JSON or CSV file all or nothing, list, and pick the DAOs to score.

An import validates every row first (each one a ``DaoRecord``, ids unique in the file) and
reports every bad row by its line; only a file without a single bad row is written, in one
transaction, so a rejected import changes nothing.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
from pydantic import ValidationError

from contracts.codec import describe_validation_error
from recalculator.daos import DaoRecord, DaoRef


@dataclass(frozen=True)
class RowError:
    """What is wrong with one row of an import file, and on which line it starts."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class ImportRejected(ValueError):
    """The import file has bad rows (``errors``) or cannot be read at all; nothing was written."""

    def __init__(self, path: Path, errors: Sequence[RowError]) -> None:
        self.path = path
        self.errors = list(errors)
        lines = "\n".join(f"  {error}" for error in self.errors)
        super().__init__(f"{path}: {len(self.errors)} bad row(s), nothing imported:\n{lines}")


@dataclass(frozen=True)
class ImportResult:
    inserted: int
    updated: int


@dataclass(frozen=True)
class RegisteredDao:
    """A row of the registry, as ``daos list`` shows it."""

    id: str
    name: str
    snapshot_space: str
    active: bool
    updated_at: datetime


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _json_rows(text: str) -> list[tuple[int, Any]]:
    """Returns ``(line, value)`` for each element of the top-level JSON list in ``text``.

    Reads element by element with ``raw_decode`` so each row keeps the line it starts on.
    Raises ``ValueError`` (with the line) when the text is not a JSON list.
    """
    decoder = json.JSONDecoder()
    ws = " \t\r\n"
    pos = len(text) - len(text.lstrip(ws))
    if not text.startswith("[", pos):
        raise ValueError(f"line {_line_of(text, pos)}: expected a JSON list of DAO objects")
    pos += 1
    rows: list[tuple[int, Any]] = []
    while True:
        while pos < len(text) and text[pos] in ws:
            pos += 1
        if text.startswith("]", pos) and not rows:
            pos += 1
            break
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise ValueError(f"line {exc.lineno}: invalid JSON: {exc.msg}") from None
        rows.append((_line_of(text, pos), value))
        pos = end
        while pos < len(text) and text[pos] in ws:
            pos += 1
        if text.startswith(",", pos):
            pos += 1
            continue
        if text.startswith("]", pos):
            pos += 1
            break
        raise ValueError(f"line {_line_of(text, pos)}: expected ',' or ']' after a DAO object")
    if text[pos:].strip(ws):
        raise ValueError(f"line {_line_of(text, pos)}: unexpected text after the JSON list")
    return rows


def _csv_rows(text: str) -> list[tuple[int, Any]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows: list[tuple[int, Any]] = []
    line = 2
    for row in reader:
        if None in row:
            rows.append((line, ValueError("more values than header columns")))
        else:
            rows.append((line, {k: v for k, v in row.items() if not (k == "active" and v == "")}))
        line = reader.line_num + 1
    if reader.fieldnames is None:
        raise ValueError("line 1: the CSV file is empty; expected id,name,snapshot_space,active")
    return rows


def parse_import(path: Path, text: str) -> list[DaoRecord]:
    """Returns the records of an import file's ``text`` (JSON when it starts with ``[`` or
    ``{``, else CSV with a header line).

    Raises ``ImportRejected`` listing every bad row by line: invalid values, unknown columns,
    a DAO id given twice, or a file that is not a JSON list or a CSV table. Pure.
    """
    try:
        is_json = text.lstrip().startswith(("[", "{"))
        raw = _json_rows(text) if is_json else _csv_rows(text)
    except ValueError as exc:
        where, _, message = str(exc).partition(": ")
        number = int(where.removeprefix("line ")) if where.startswith("line ") else 1
        raise ImportRejected(path, [RowError(number, message or str(exc))]) from None
    records: list[DaoRecord] = []
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    for line, value in raw:
        if isinstance(value, ValueError):
            errors.append(RowError(line, str(value)))
            continue
        if not isinstance(value, dict):
            errors.append(RowError(line, f"expected an object, got {type(value).__name__}"))
            continue
        try:
            record = DaoRecord.model_validate(value)
        except ValidationError as exc:
            errors.append(RowError(line, describe_validation_error(exc)))
            continue
        if record.id in seen:
            errors.append(
                RowError(line, f"DAO id {record.id!r} already given on line {seen[record.id]}")
            )
            continue
        seen[record.id] = line
        records.append(record)
    if errors:
        raise ImportRejected(path, errors)
    return records


async def read_import_file(path: Path) -> list[DaoRecord]:
    """Returns the validated records of the file at ``path`` (read in a thread).

    Raises ``ImportRejected`` for an unreadable file or any bad row.
    """
    try:
        text = await asyncio.to_thread(path.read_text, encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportRejected(path, [RowError(1, f"cannot read the file: {exc}")]) from None
    return parse_import(path, text)


async def import_daos(pool: asyncpg.Pool, records: Sequence[DaoRecord]) -> ImportResult:
    """Inserts or updates every record in one transaction; DAOs not named are left as they are.

    Returns how many were inserted and updated. Idempotent: importing the same file twice
    changes nothing the second time but ``updated_at``.
    """
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            "INSERT INTO daos (id, name, snapshot_space, active)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::boolean[])"
            " ON CONFLICT (id) DO UPDATE SET name = excluded.name,"
            " snapshot_space = excluded.snapshot_space, active = excluded.active,"
            " updated_at = now()"
            " RETURNING (xmax = 0) AS inserted",
            [r.id for r in records],
            [r.name for r in records],
            [r.snapshot_space for r in records],
            [r.active for r in records],
        )
    inserted = sum(1 for row in rows if row["inserted"])
    return ImportResult(inserted=inserted, updated=len(rows) - inserted)


async def list_daos(pool: asyncpg.Pool) -> list[RegisteredDao]:
    """Returns every registered DAO, active or not, by id."""
    rows = await pool.fetch(
        "SELECT id, name, snapshot_space, active, updated_at FROM daos ORDER BY id"
    )
    return [RegisteredDao(**dict(row)) for row in rows]


class UnknownDaos(LookupError):
    """A run asked for DAO ids the registry does not have, or has as inactive; the message
    names them ("unknown DAO ids: a, b; inactive DAO ids: c")."""

    def __init__(self, unknown: Sequence[str], inactive: Sequence[str]) -> None:
        self.unknown = list(unknown)
        self.inactive = list(inactive)
        parts = [f"unknown DAO ids: {', '.join(unknown)}"] if unknown else []
        if inactive:
            parts.append(f"inactive DAO ids: {', '.join(inactive)}")
        super().__init__("; ".join(parts))


async def daos_to_score(pool: asyncpg.Pool, dao_ids: Sequence[str] | None) -> list[DaoRef]:
    """Returns the DAOs a run scores: every active one when ``dao_ids`` is None, else exactly
    those named, by id.

    Raises ``UnknownDaos`` naming the ids not in the registry and those of inactive DAOs: a
    DAO taken out of the registry's tracking is not scored, not even when named.
    """
    if dao_ids is None:
        rows = await pool.fetch(
            "SELECT id, name, snapshot_space FROM daos WHERE active ORDER BY id"
        )
        return [DaoRef(**dict(row)) for row in rows]
    wanted = sorted(set(dao_ids))
    rows = await pool.fetch(
        "SELECT id, name, snapshot_space, active FROM daos WHERE id = ANY($1::text[]) ORDER BY id",
        wanted,
    )
    found = {row["id"] for row in rows}
    unknown = [dao_id for dao_id in wanted if dao_id not in found]
    inactive = [row["id"] for row in rows if not row["active"]]
    if unknown or inactive:
        raise UnknownDaos(unknown, inactive)
    return [
        DaoRef(id=row["id"], name=row["name"], snapshot_space=row["snapshot_space"]) for row in rows
    ]
