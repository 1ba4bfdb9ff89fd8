"""The overlap guard: one run per job name at a time, across every process and host.

A session-level Postgres advisory lock, taken with ``pg_try_advisory_lock`` on a connection
held for the whole run. The lock dies with its session, so a run killed by SIGKILL never leaves
it behind. The key includes the schema, so deployments (and tests) in separate schemas of one
database do not block each other.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg

_KEY = "hashtextextended('recalculator-run:' || current_schema() || ':' || $1, 0)"


@contextlib.asynccontextmanager
async def run_lock(pool: asyncpg.Pool, job_name: str) -> AsyncIterator[bool]:
    """Yields True while this process holds ``job_name``'s run lock, False when another run
    holds it (then nothing is locked). Releases the lock on exit."""
    async with pool.acquire() as conn:
        locked = bool(await conn.fetchval(f"SELECT pg_try_advisory_lock({_KEY})", job_name))
        try:
            yield locked
        finally:
            if locked:
                # A session that died took its lock with it; only a live one must unlock.
                with contextlib.suppress(asyncpg.PostgresError, OSError):
                    await conn.execute(f"SELECT pg_advisory_unlock({_KEY})", job_name)
