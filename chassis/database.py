"""The Postgres pool: one per service, with ``search_path`` set to the service's own schema."""

from __future__ import annotations

import logging
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from yarl import URL

from chassis.migrations import MigrationSource, apply_migrations, quote_ident

log = logging.getLogger(__name__)

Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
"""A plain connection or one acquired from a pool: what a caller's transaction runs on."""


TRANSIENT_DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # e.g. the connection was closed, or released by its close
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, starting up, cancelled
    asyncpg.exceptions.TransactionRollbackError,  # deadlock, serialization failure
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    # asyncpg's "cannot switch to state N; another operation is in progress": what a
    # connection that Postgres dropped mid-transaction raises (seen on a restart).
    asyncpg.exceptions.InternalClientError,
)
"""Errors that say the database is away or busy, not that a statement is wrong: worth retrying
the whole transaction on a fresh connection. A transaction cut during its COMMIT may still have
committed, so what is retried must be idempotent."""

ACQUIRE_TIMEOUT_S = 30.0
"""How long a caller waits for a pool connection before treating it as an outage (asyncpg's
``acquire`` waits forever by default, so a leaked connection would wedge its caller)."""


class DatabaseUnavailable(RuntimeError):
    """Postgres did not answer at start; the message says where we tried (without secrets)."""


def redact_dsn(dsn: str) -> str:
    parsed = URL(dsn)
    return str(parsed.with_password("***")) if parsed.password else dsn


async def create_pool(
    dsn: str, schema: str, *, min_size: int = 1, max_size: int = 10, timeout_s: float = 10.0
) -> asyncpg.Pool:
    """Return a pool whose connections see ``schema`` first; raises ``DatabaseUnavailable``."""
    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout_s,
            server_settings={"search_path": f"{quote_ident(schema)}, public"},
        )
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        raise DatabaseUnavailable(
            f"cannot connect to Postgres at {redact_dsn(dsn)}: {exc or type(exc).__name__}"
        ) from exc
    return pool


async def migrate(dsn: str, schema: str, sources: list[MigrationSource]) -> list[str]:
    """Apply ``sources`` into ``schema`` over one short-lived connection; return what ran."""
    try:
        conn = await asyncpg.connect(dsn, timeout=10)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        raise DatabaseUnavailable(
            f"cannot connect to Postgres at {redact_dsn(dsn)}: {exc or type(exc).__name__}"
        ) from exc
    try:
        return await apply_migrations(conn, schema, sources)
    finally:
        await conn.close()
