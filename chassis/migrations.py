"""The migration runner: each service applies its own ordered SQL files into its own schema.

A source is a folder of ``NNNN_name.sql`` files. Files run in name order, each in its own
transaction with ``search_path`` set to the service's schema (so the SQL names no schema and
tests can use one schema each), and are recorded in ``<schema>.schema_migrations``. A
transaction-level advisory lock per schema makes two processes starting at once safe: the
second waits, then finds nothing left to do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)


class MigrationError(RuntimeError):
    """A migration file failed; the message names the file and the database's error."""


@dataclass(frozen=True)
class MigrationSource:
    """A named folder of SQL files; the name keeps versions of different sources apart."""

    name: str
    folder: Path

    def files(self) -> list[Path]:
        return sorted(self.folder.glob("[0-9][0-9][0-9][0-9]_*.sql"))


def migration_report(schema: str, applied: Sequence[str]) -> str:
    """The line ``<service> migrate`` prints: what it applied into ``schema``, or that nothing."""
    if not applied:
        return f"{schema}: schema up to date"
    return f"{schema}: applied {len(applied)} migration(s): {', '.join(applied)}"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def apply_migrations(
    conn: asyncpg.Connection, schema: str, sources: list[MigrationSource]
) -> list[str]:
    """Apply every not yet applied file of ``sources`` into ``schema``; return what was applied.

    Idempotent. Raises ``MigrationError`` on the first failing file, which is rolled back.
    """
    applied: list[str] = []
    ident = quote_ident(schema)
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext('chainsights-migrations:' || $1))", schema
        )
        # Only when missing: CREATE SCHEMA asks for CREATE on the database even with IF NOT
        # EXISTS, which a role given just its own schema (created for it) does not have.
        if not await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema):
            await conn.execute(f"CREATE SCHEMA {ident}")
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {ident}.schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {
            r["version"]
            for r in await conn.fetch(
                f"SELECT version FROM {ident}.schema_migrations"  # noqa: S608 quoted schema name
            )
        }
        for source in sources:
            for path in source.files():
                version = f"{source.name}/{path.name}"
                if version in done:
                    continue
                await _apply_one(conn, ident, version, path)
                applied.append(version)
    for version in applied:
        log.info("applied migration %s to schema %s", version, schema)
    return applied


async def _apply_one(conn: asyncpg.Connection, ident: str, version: str, path: Path) -> None:
    sql = await asyncio.to_thread(path.read_text, encoding="utf-8")
    try:
        async with conn.transaction():
            await conn.execute(f"SET LOCAL search_path TO {ident}, public")
            await conn.execute(sql)
            await conn.execute(
                f"INSERT INTO {ident}.schema_migrations (version) VALUES ($1)",  # noqa: S608 quoted schema name
                version,
            )
    except asyncpg.PostgresError as exc:
        raise MigrationError(f"migration {version} failed: {exc}") from exc
