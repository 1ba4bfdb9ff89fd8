"""Admin sessions on the server (``admin_sessions``): opened at login, ended at logout.

A session cookie is signed (:class:`job_ledger.web.auth.SessionKeys`) *and* must name a row
here that has not expired: logging out deletes the row, "log out everywhere" deletes every
row, and :func:`seal_password` deletes every row when the ledger starts with another
``ADMIN_PASSWORD`` than the one the sessions were opened with. Rows hold a hash of the
session id, never the id itself, so reading the table opens no session. Every function takes
a pool whose ``search_path`` starts with the ledger's schema.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from datetime import datetime, timedelta

import asyncpg

log = logging.getLogger(__name__)


def _sid_hash(sid: str) -> bytes:
    return hashlib.sha256(sid.encode("utf-8")).digest()


async def open_session(
    pool: asyncpg.Pool, sid: str, now: datetime, lifetime: timedelta, client: str
) -> None:
    """Record a new session (and drop expired ones, so the table stays small)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM admin_sessions WHERE expires_at <= $1", now)
        await conn.execute(
            "INSERT INTO admin_sessions (sid_hash, created_at, expires_at, client)"
            " VALUES ($1, $2, $3, $4)",
            _sid_hash(sid),
            now,
            now + lifetime,
            client,
        )


async def session_alive(pool: asyncpg.Pool, sid: str, now: datetime) -> bool:
    """True when the session ``sid`` was opened and has neither ended nor expired."""
    found = await pool.fetchval(
        "SELECT true FROM admin_sessions WHERE sid_hash = $1 AND expires_at > $2",
        _sid_hash(sid),
        now,
    )
    return bool(found)


async def end_session(pool: asyncpg.Pool, sid: str) -> None:
    """End the session ``sid``; idempotent."""
    await pool.execute("DELETE FROM admin_sessions WHERE sid_hash = $1", _sid_hash(sid))


async def end_all_sessions(pool: asyncpg.Pool) -> int:
    """End every session; return how many there were."""
    status = await pool.execute("DELETE FROM admin_sessions")
    return int(status.split()[-1])


def _fingerprint(password: str, salt: bytes) -> bytes:
    # scrypt, salted: the row alone does not let anyone test guesses at speed.
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=2**14, r=8, p=1, dklen=32)


async def seal_password(pool: asyncpg.Pool, password: str, now: datetime) -> int:
    """Check ``password`` against the one the sessions were opened with; when it differs (or
    none was recorded), end every session and record this one. Return how many ended.

    Run at start by every process serving the pages; processes starting together take turns
    (the row is locked), so only the first with a new password ends the sessions.
    """
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("LOCK TABLE admin_password_seal IN EXCLUSIVE MODE")
        row = await conn.fetchrow("SELECT salt, fingerprint FROM admin_password_seal")
        if row is not None:
            computed = await asyncio.to_thread(_fingerprint, password, bytes(row["salt"]))
            if hmac.compare_digest(computed, bytes(row["fingerprint"])):
                return 0
        salt = secrets.token_bytes(16)
        fingerprint = await asyncio.to_thread(_fingerprint, password, salt)
        ended = int((await conn.execute("DELETE FROM admin_sessions")).split()[-1])
        await conn.execute(
            "INSERT INTO admin_password_seal (only_row, salt, fingerprint, sealed_at)"
            " VALUES (true, $1, $2, $3) ON CONFLICT (only_row) DO UPDATE"
            " SET salt = EXCLUDED.salt, fingerprint = EXCLUDED.fingerprint,"
            " sealed_at = EXCLUDED.sealed_at",
            salt,
            fingerprint,
            now,
        )
    if row is not None:
        log.warning("ADMIN_PASSWORD changed: ended %d admin session(s)", ended)
    return ended
