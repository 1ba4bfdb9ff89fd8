"""The overlap guard: one run per job name at a time, across every process and host.

A session-level Postgres advisory lock, taken with ``pg_try_advisory_lock`` on a connection
held for the whole run. The lock dies with its session, so a run killed by SIGKILL never leaves
it behind. The key includes the schema, so deployments (and tests) in separate schemas of one
database do not block each other.

If Postgres restarts under a run, the lock goes with its session: the run goes on (its writes
retry the outage), the guard does not try to unlock a dead session, and another run could take
the lock meanwhile; each DAO's write is idempotent per job, so such an overlap writes two jobs,
never a corrupt one.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import asyncpg

from chassis.database import ACQUIRE_TIMEOUT_S, TRANSIENT_DATABASE_ERRORS

log = logging.getLogger(__name__)

_UNLOCK_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    *TRANSIENT_DATABASE_ERRORS,
)

_KEY = "hashtextextended('recalculator-run:' || current_schema() || ':' || $1, 0)"


@contextlib.asynccontextmanager
async def run_lock(pool: asyncpg.Pool, job_name: str) -> AsyncIterator[bool]:
    """Yields True while this process holds ``job_name``'s run lock, False when another run
    holds it (then nothing is locked). Releases the lock on exit; never raises there, even
    when the lock's connection died under the run. Raises the database's error (or
    ``TimeoutError`` waiting for a connection) when the lock cannot be asked for."""
    async with pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
        locked = bool(await conn.fetchval(f"SELECT pg_try_advisory_lock({_KEY})", job_name))
        try:
            yield locked
        finally:
            if locked:
                try:
                    await conn.execute(f"SELECT pg_advisory_unlock({_KEY})", job_name)
                except _UNLOCK_ERRORS as exc:
                    # A session that died took its lock with it (asyncpg has then already
                    # released the connection to the pool): nothing is left to unlock.
                    log.warning("run lock's session was lost during the run: %s", exc)
