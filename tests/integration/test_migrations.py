"""The migration runner on the real Postgres: ordered, recorded, safe at once, clear on failure."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from chassis.database import migrate
from chassis.migrations import MigrationError, MigrationSource


def write(folder: Path, name: str, sql: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(sql)


async def test_files_apply_in_order_once_each(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    write(tmp_path, "0001_create.sql", "CREATE TABLE things (id int PRIMARY KEY);")
    write(tmp_path, "0002_seed.sql", "INSERT INTO things VALUES (1), (2);")
    source = MigrationSource("svc", tmp_path)

    first = await migrate(database_url, schema, [source])
    second = await migrate(database_url, schema, [source])

    assert first == ["svc/0001_create.sql", "svc/0002_seed.sql"]
    assert second == []
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval(f'SELECT count(*) FROM "{schema}".things') == 2
    finally:
        await conn.close()


async def test_two_processes_migrating_at_once_apply_each_file_once(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    write(tmp_path, "0001_create.sql", "CREATE TABLE things (id int PRIMARY KEY);")
    write(tmp_path, "0002_seed.sql", "SELECT pg_sleep(0.3); INSERT INTO things VALUES (1);")
    source = MigrationSource("svc", tmp_path)

    results = await asyncio.gather(*(migrate(database_url, schema, [source]) for _ in range(3)))

    assert sorted(len(r) for r in results) == [0, 0, 2]


async def test_a_failing_file_is_named_and_rolled_back(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    write(tmp_path, "0001_ok.sql", "CREATE TABLE ok (id int);")
    write(tmp_path, "0002_broken.sql", "CREATE TABLE broken (id nonsense_type);")

    with pytest.raises(MigrationError, match=r"svc/0002_broken.sql failed: .*nonsense_type"):
        await migrate(database_url, schema, [MigrationSource("svc", tmp_path)])

    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT to_regclass($1)", f'"{schema}".broken') is None
    finally:
        await conn.close()
