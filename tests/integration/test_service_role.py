"""A service whose Postgres role owns its schema and nothing else migrates and connects, with a
password that no URL could hold unencoded (the compose deployment's roles)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from yarl import URL

from chassis.database import create_pool, migrate
from chassis.migrations import MigrationSource
from chassis.settings import BaseServiceSettings, load_settings

PASSWORD = "p/w@x:y%z"


@pytest.fixture
async def role(database_url: str, schema: str, unique: str) -> AsyncIterator[str]:
    """A login role without CREATE on the database, owning ``schema`` (made for it)."""
    name = f"svc_{unique}"
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{PASSWORD}'")
        await conn.execute(f'CREATE SCHEMA "{schema}" AUTHORIZATION {name}')
        yield name
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await conn.execute(f"DROP ROLE {name}")
    finally:
        await conn.close()


async def test_a_role_owning_only_its_schema_migrates_it_and_connects(
    tmp_path: Path, database_url: str, schema: str, role: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "0001_t.sql").write_text("CREATE TABLE t (id int); INSERT INTO t VALUES (7);")
    plain = URL(database_url)
    monkeypatch.setenv("DATABASE_URL", str(plain.with_user(role).with_password(None)))
    monkeypatch.setenv("DATABASE_PASSWORD", PASSWORD)
    dsn = load_settings(BaseServiceSettings).database_url

    assert await migrate(dsn, schema, [MigrationSource("svc", tmp_path)]) == ["svc/0001_t.sql"]
    pool = await create_pool(dsn, schema)
    try:
        assert await pool.fetchval("SELECT id FROM t") == 7
        assert await pool.fetchval("SELECT current_user") == role
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await pool.execute("CREATE SCHEMA another_one")
    finally:
        await pool.close()
