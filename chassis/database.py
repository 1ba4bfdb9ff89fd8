"""The Postgres pool: one per service, with ``search_path`` set to the service's own schema."""

from __future__ import annotations

import logging
import re
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from pydantic import SecretStr
from yarl import URL

from chassis import retry
from chassis.migrations import MigrationSource, apply_migrations, quote_ident

log = logging.getLogger(__name__)

Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
"""A plain connection or one acquired from a pool: what a caller's transaction runs on."""


TRANSIENT_DATABASE_ERRORS = retry.TRANSIENT_DATABASE_ERRORS
"""The same tuple as :data:`chassis.retry.TRANSIENT_DATABASE_ERRORS`, where it is defined."""

ACQUIRE_TIMEOUT_S = 30.0
"""How long a caller waits for a pool connection before treating it as an outage (asyncpg's
``acquire`` waits forever by default, so a leaked connection would wedge its caller)."""


class DatabaseUnavailable(RuntimeError):
    """Postgres did not answer at start, or ``DATABASE_URL`` does not say where it is; the
    message says where we tried, without the password."""


# ``scheme://user:`` then the password: everything up to the last ``@`` of the word.
_PASSWORD_IN_URL = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)\S*@", re.IGNORECASE)
# libpq's query parameters that carry a secret (``?password=…``, ``&sslpassword=…``).
_PASSWORD_IN_QUERY = re.compile(r"(?P<head>[?&](?:ssl)?password=)[^&#\s]*", re.IGNORECASE)
_SECRET_QUERY_KEYS = ("password", "sslpassword")

DatabaseUrl: TypeAlias = "str | SecretStr"
"""``DATABASE_URL`` as the settings hold it (a secret) or as plain text."""


def _plain(dsn: DatabaseUrl) -> str:
    return dsn.get_secret_value() if isinstance(dsn, SecretStr) else dsn


def dsn_secrets(dsn: DatabaseUrl) -> list[str]:
    """The passwords ``dsn`` carries (user info and query), longest first; never raises."""
    text = _plain(dsn)
    try:
        url = URL(text)
        found = [url.password or ""] + [url.query.get(key, "") for key in _SECRET_QUERY_KEYS]
    except (ValueError, TypeError):
        found = []
    return sorted({s for s in found if s}, key=len, reverse=True)


def redact_dsn(dsn: DatabaseUrl, text: str | None = None) -> str:
    """``text`` (default: ``dsn`` itself) with every password of ``dsn`` replaced by ``***``,
    in the user info and in the query string alike; fit for a log line; never raises."""
    plain = _plain(dsn)
    text = plain if text is None else text
    for secret in dsn_secrets(plain):
        text = text.replace(secret, "***")
    text = _PASSWORD_IN_URL.sub(r"\g<head>***@", text)
    return _PASSWORD_IN_QUERY.sub(r"\g<head>***", text)


def _unavailable(dsn: str, exc: BaseException) -> DatabaseUnavailable:
    """The error to raise for a failed connect: a malformed DSN is said to be one."""
    text = retry.describe(exc) if isinstance(exc, ValueError) else str(exc) or type(exc).__name__
    text = redact_dsn(dsn, text)
    if isinstance(exc, ValueError):
        return DatabaseUnavailable(f"DATABASE_URL {redact_dsn(dsn)!r} is not usable: {text}")
    return DatabaseUnavailable(f"cannot connect to Postgres at {redact_dsn(dsn)}: {text}")


# What asyncpg raises for a connect that failed: an outage, a refusal, a DSN it cannot read
# (``ClientConfigurationError`` is a ``ValueError``; a bad port is a bare ``ValueError``).
_CONNECT_ERRORS = (TimeoutError, OSError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError)


async def create_pool(
    url: DatabaseUrl, schema: str, *, min_size: int = 1, max_size: int = 10, timeout_s: float = 10.0
) -> asyncpg.Pool:
    """Return a pool whose connections see ``schema`` first; raises ``DatabaseUnavailable``."""
    dsn = _plain(url)
    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout_s,
            server_settings={"search_path": f"{quote_ident(schema)}, public"},
        )
    except _CONNECT_ERRORS as exc:
        raise _unavailable(dsn, exc) from exc
    return pool


async def migrate(url: DatabaseUrl, schema: str, sources: list[MigrationSource]) -> list[str]:
    """Apply ``sources`` into ``schema`` over one short-lived connection; return what ran.

    Raises ``DatabaseUnavailable`` or ``MigrationError``.
    """
    dsn = _plain(url)
    try:
        conn = await asyncpg.connect(dsn, timeout=10)
    except _CONNECT_ERRORS as exc:
        raise _unavailable(dsn, exc) from exc
    try:
        return await apply_migrations(conn, schema, sources)
    finally:
        await conn.close()
