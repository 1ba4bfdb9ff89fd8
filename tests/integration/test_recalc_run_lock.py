"""The run lock survives a Postgres restart: the guard's watch takes it back once Postgres
answers, and names the overlap when another run was quicker. These tests restart the
machine's Postgres cluster for real."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import asyncpg
import pytest
from yarl import URL

from recalculator.run_lock import run_lock
from tests.support.broker import eventually
from tests.support.postgres import ensure_postgres_started, restart_postgres
from tests.support.tcp_proxy import TcpProxy

JOB = "weekly-gvs-recalculation"
CHECK_EVERY_S = 0.2


@pytest.fixture
async def locking_schema(database_url: str, schema: str) -> AsyncIterator[str]:
    """This test's schema, created (the lock's key includes it); Postgres is started again
    after the test, whatever happened in it."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await conn.close()
    try:
        yield schema
    finally:
        await asyncio.to_thread(ensure_postgres_started)


async def open_pool(dsn: str, schema: str, name: str) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=2,
        server_settings={"search_path": schema, "application_name": name},
    )


async def advisory_locks_of(database_url: str, application_name: str) -> int | None:
    """How many advisory locks the sessions named ``application_name`` hold; None while
    Postgres does not answer."""
    try:
        conn = await asyncpg.connect(database_url, timeout=5)
    except (OSError, asyncpg.PostgresError):
        return None
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
            " WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = $1",
            application_name,
        )
        return count
    finally:
        await conn.close()


async def wait_until_held_again(database_url: str, application_name: str) -> None:
    """Wait (15 s at most) until the sessions named ``application_name`` hold the lock."""
    await eventually(
        lambda: advisory_locks_of(database_url, application_name),
        lambda count: count == 1,
        timeout_s=15,
        interval_s=0.2,
    )


async def run_lock_yields(pool: asyncpg.Pool) -> bool:
    async with run_lock(pool, JOB) as locked:
        return locked


def guard_logs(caplog: pytest.LogCaptureFixture, level: int, says: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "recalculator.run_lock" and r.levelno == level and says in r.getMessage()
    ]


async def test_the_run_lock_is_held_again_within_seconds_after_a_postgres_restart(
    database_url: str, locking_schema: str, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="recalculator.run_lock")
    ours_name = f"run-lock-{unique}"
    ours = await open_pool(database_url, locking_schema, ours_name)
    other = await open_pool(database_url, locking_schema, f"other-{unique}")
    try:
        async with run_lock(ours, JOB, check_every_s=CHECK_EVERY_S) as held:
            assert held
            await asyncio.to_thread(restart_postgres)
            await wait_until_held_again(database_url, ours_name)
            refused_during = not await run_lock_yields(other)
        taken_after = await run_lock_yields(other)
    finally:
        await asyncio.gather(ours.close(), other.close())

    assert refused_during, "a second run_lock is refused once the lock is held again"
    assert taken_after, "the first run_lock released the lock it took back"
    assert guard_logs(caplog, logging.WARNING, "lost with its Postgres session"), "by the restart"
    assert guard_logs(caplog, logging.WARNING, "is held again")
    assert not guard_logs(caplog, logging.ERROR, ""), "no overlap, no error"


async def test_a_run_that_took_the_lock_during_the_restart_is_named_as_an_overlap(
    database_url: str, locking_schema: str, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="recalculator.run_lock")

    async def overlaps() -> list[str]:
        return guard_logs(caplog, logging.ERROR, "overlap")

    url = URL(database_url)
    async with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        # Our run reaches Postgres through the proxy, which the test closes to new links
        # across the restart, so that the other run certainly takes the lock first.
        ours_name = f"run-lock-{unique}"
        ours = await open_pool(str(url.with_port(proxy.port)), locking_schema, ours_name)
        other = await open_pool(database_url, locking_schema, f"other-{unique}")
        try:
            async with run_lock(ours, JOB, check_every_s=CHECK_EVERY_S) as held:
                assert held
                proxy.accepting = False
                await asyncio.to_thread(restart_postgres)
                async with run_lock(other, JOB) as other_held:
                    assert other_held, "the other run took the lock while ours was lost"
                    proxy.restore()
                    await eventually(overlaps, bool, timeout_s=15)
                # The watch keeps trying: the other run over, ours has its lock back.
                await wait_until_held_again(database_url, ours_name)
                refused_during = not await run_lock_yields(other)
            taken_after = await run_lock_yields(other)
        finally:
            await asyncio.gather(ours.close(), other.close())

    [overlap] = await overlaps()  # once, though the watch tried again and again meanwhile
    assert f"another {JOB} run took the run lock" in overlap
    assert refused_during, "the lock was taken back after the other run released it"
    assert taken_after, "the exit released the lock and did not raise"
    assert guard_logs(caplog, logging.WARNING, "is held again, the overlap is over")
