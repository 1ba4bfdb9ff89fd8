"""The run lock: one run per job name at a time, across every process and host.

A session-level Postgres advisory lock, taken with ``pg_try_advisory_lock`` on a pool
connection held for the whole run. The lock dies with its session, so a run killed by SIGKILL
never leaves it behind. The key includes the schema, so deployments (and tests) in separate
schemas of one database do not block each other.

A session also dies when Postgres restarts under a run, and the run goes on (its writes retry
the outage). So while the lock is held, a watch pings the lock's connection every
``LOCK_CHECK_INTERVAL_S``; when the session is gone, it takes the lock again on a fresh
connection as soon as Postgres answers. A ping that times out is no proof of a lost session
(Postgres keeps a live session's locks), so the watch just pings again. Should another run
have taken the lock in between, the watch logs an error naming the overlap and keeps trying,
so it takes the lock back when that run ends. Meanwhile the two runs go on side by side: this
process cannot stop the other, and failing its own run would not undo the overlap. Each DAO's
write is idempotent per job, so an overlap writes two jobs, never a corrupt one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from chassis.database import ACQUIRE_TIMEOUT_S
from chassis.retry import is_transient_database_error

log = logging.getLogger(__name__)

LOCK_CHECK_INTERVAL_S = 2.0
"""How often the watch checks that the lock's session is alive, or tries to take it again."""

_QUERY_TIMEOUT_S = 5.0

_KEY = "hashtextextended('recalculator-run:' || current_schema() || ':' || $1, 0)"

_Connection: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"


def _is_database_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the database's: a statement's error or a transient fault."""
    return isinstance(exc, asyncpg.PostgresError) or is_transient_database_error(exc)


@contextlib.asynccontextmanager
async def run_lock(
    pool: asyncpg.Pool, job_name: str, *, check_every_s: float = LOCK_CHECK_INTERVAL_S
) -> AsyncIterator[bool]:
    """Yields True while this process holds ``job_name``'s run lock, False when another run
    holds it (then nothing is locked). While it is held, a watch takes the lock back if its
    session is lost (see the module's docstring). Releases the lock on exit; never raises
    there. Raises the database's error (or ``TimeoutError``) when the lock cannot be asked for."""
    conn = await _take(pool, job_name)
    if conn is None:
        yield False
        return
    held = _HeldLock(pool, job_name, conn)
    watch = asyncio.create_task(held.watch(check_every_s), name=f"run lock watch: {job_name}")
    try:
        yield True
    finally:
        watch.cancel()
        try:
            await asyncio.wait([watch])
            if not watch.cancelled() and (error := watch.exception()) is not None:
                log.error("the watch of %s's run lock failed", job_name, exc_info=error)
        finally:
            await held.release()


async def already_going(pool: asyncpg.Pool, job_name: str) -> str:
    """Why a run is refused while another holds ``job_name``'s lock, naming the running job
    once its row is written. Raises the database's error."""
    running = await pool.fetchval(
        "SELECT id FROM jobs WHERE job_name = $1 AND status = 'running'"
        " ORDER BY started_at DESC LIMIT 1",
        job_name,
    )
    going = f"a run of {job_name} is already going"
    return f"{going} (job {running})" if running is not None else going


async def _take(pool: asyncpg.Pool, job_name: str) -> _Connection | None:
    """Returns a pool connection whose session now holds ``job_name``'s run lock, or None (the
    connection given back) when another session holds it. Raises the database's error or
    ``TimeoutError``; nothing is held then."""
    conn: _Connection = await pool.acquire(timeout=ACQUIRE_TIMEOUT_S)
    try:
        sql = f"SELECT pg_try_advisory_lock({_KEY})"
        if await conn.fetchval(sql, job_name, timeout=_QUERY_TIMEOUT_S):
            return conn
    except BaseException:
        _end_session(conn)  # a lock granted before the error goes with its session
        raise
    await pool.release(conn)
    return None


def _end_session(conn: _Connection) -> None:
    """Closes ``conn`` at once: its session ends, with any lock it holds, and the pool gets its
    slot back."""
    with contextlib.suppress(asyncpg.InterfaceError):  # already closed and given back
        conn.terminate()


class _HeldLock:
    """The connection whose session holds the lock, or None while the lock is lost."""

    def __init__(self, pool: asyncpg.Pool, job_name: str, conn: _Connection) -> None:
        self._pool = pool
        self._job_name = job_name
        self._conn: _Connection | None = conn
        self._overlap = False

    async def watch(self, every_s: float) -> None:
        """Checks the lock every ``every_s`` until cancelled; a database error is logged, and
        the next check tries again."""
        while True:
            await asyncio.sleep(every_s)
            try:
                await self._check()
            except Exception as exc:
                if not _is_database_error(exc):
                    raise
                log.warning(
                    "could not check %s's run lock (%s); trying again in %.0f s",
                    self._job_name,
                    exc or type(exc).__name__,
                    every_s,
                )

    async def _check(self) -> None:
        if self._conn is not None:
            try:
                await self._conn.fetchval("SELECT 1", timeout=_QUERY_TIMEOUT_S)
                return
            except TimeoutError:
                raise  # slow, not lost: the session and its lock may well be alive
            except Exception as exc:
                if not is_transient_database_error(exc):
                    raise
                log.warning(
                    "%s's run lock was lost with its Postgres session (%s); taking it again",
                    self._job_name,
                    exc or type(exc).__name__,
                )
                _end_session(self._conn)
                self._conn = None
        self._conn = await _take(self._pool, self._job_name)
        if self._conn is not None:
            log.warning(
                "%s's run lock is held again%s",
                self._job_name,
                ", the overlap is over" if self._overlap else "",
            )
            self._overlap = False
        elif not self._overlap:
            self._overlap = True
            log.error(
                "overlap: another %s run took the run lock while this run's session was lost;"
                " both runs go on, each writing its own job, and this one takes the lock back"
                " when the other ends",
                self._job_name,
            )

    async def release(self) -> None:
        """Unlocks the lock if held and gives its connection back; never raises (a connection
        that cannot unlock is closed, which ends its session and the lock)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            sql = f"SELECT pg_advisory_unlock({_KEY})"
            await conn.execute(sql, self._job_name, timeout=_QUERY_TIMEOUT_S)
            await self._pool.release(conn)
        except Exception as exc:
            if not _is_database_error(exc):
                raise
            log.warning(
                "could not unlock %s's run lock (%s); closing its connection instead",
                self._job_name,
                exc or type(exc).__name__,
            )
            _end_session(conn)
