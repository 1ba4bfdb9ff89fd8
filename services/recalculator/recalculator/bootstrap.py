"""The composition root: builds the pool, the broker connection, the HTTP session, the source,
the relay and the run from settings, and hands each in explicitly. Nothing connects at import.

``async with bootstrap(settings) as app:`` opens everything in order (declaring the topology)
and closes it in reverse; tests pass overrides (``source=``, ``scorer=``, ``amqp_url=``) to
swap one part. :func:`build_recalculation` is the run alone, for a caller that brings its own
pool and store (a benchmark with no broker).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
from aio_pika.abc import AbstractRobustConnection

from chassis import outbox
from chassis.broker import connect, declare_topology
from chassis.database import create_pool, migrate
from chassis.migrations import MigrationSource
from chassis.outbox import OutboxRelay
from recalculator.config import Settings
from recalculator.fetching import RetryPolicy
from recalculator.governance import GovernanceSource, make_source
from recalculator.jobs import JobStore
from recalculator.revalidation import CacheRevalidator
from recalculator.run import Clock, Recalculation, Scorer, default_scorer, utc_clock

MIGRATIONS = MigrationSource("recalculator", Path(__file__).parent / "migrations")


async def migrate_schema(settings: Settings) -> list[str]:
    """Applies the outbox's and the recalculator's migrations; returns what ran. Idempotent.

    Raises ``DatabaseUnavailable`` or ``MigrationError``.
    """
    return await migrate(
        settings.database_url, settings.recalc_schema, [outbox.MIGRATIONS, MIGRATIONS]
    )


@dataclass(frozen=True)
class App:
    """Everything a command needs, built once and connected."""

    settings: Settings
    pool: asyncpg.Pool
    connection: AbstractRobustConnection
    session: aiohttp.ClientSession
    relay: OutboxRelay
    store: JobStore
    recalculation: Recalculation


@contextlib.asynccontextmanager
async def open_pool(settings: Settings, *, extra: int = 4) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the recalculator's schema, large enough for every DAO task plus the run
    lock, the relay and the job row; raises ``DatabaseUnavailable``."""
    pool = await create_pool(
        settings.database_url,
        settings.recalc_schema,
        max_size=settings.dao_concurrency + extra,
        timeout_s=settings.connect_timeout.total_seconds(),
    )
    try:
        yield pool
    finally:
        await pool.close()


def build_recalculation(
    settings: Settings,
    pool: asyncpg.Pool,
    session: aiohttp.ClientSession,
    store: JobStore,
    *,
    source: GovernanceSource | None = None,
    scorer: Scorer = default_scorer,
    clock: Clock = utc_clock,
) -> Recalculation:
    """The run as ``settings`` configure it, writing with ``store`` and fetching with
    ``session``; ``source`` replaces the configured governance source. Raises ``ValueError``
    naming the governance setting at fault."""
    dao_timeout_s = settings.dao_timeout.total_seconds()
    if source is None:
        source = make_source(
            settings.governance_source,
            session=session,
            hub_url=settings.snapshot_hub_url,
            data_path=settings.governance_data,
            timeout_s=dao_timeout_s,
            api_key=settings.snapshot_api_key,
            rate_limit=settings.snapshot_rate_limit,
        )
    revalidator = CacheRevalidator(
        session,
        settings.cache_revalidate_url,
        settings.cache_revalidate_secret,
        timeout_s=settings.cache_revalidate_timeout.total_seconds(),
    )
    return Recalculation(
        pool=pool,
        store=store,
        source=source,
        revalidator=revalidator,
        concurrency=settings.dao_concurrency,
        policy=RetryPolicy(
            timeout_s=dao_timeout_s,
            retries=settings.dao_retries,
            backoff_s=settings.dao_retry_backoff.total_seconds(),
        ),
        scorer=scorer,
        clock=clock,
    )


@contextlib.asynccontextmanager
async def bootstrap(
    settings: Settings,
    *,
    source: GovernanceSource | None = None,
    scorer: Scorer = default_scorer,
    clock: Clock = utc_clock,
    amqp_url: str | None = None,
) -> AsyncIterator[App]:
    """Yields the wired ``App`` (the topology declared); closes session, connection and pool
    on exit. Raises ``DatabaseUnavailable``, ``BrokerUnavailable``, or ``ValueError`` naming
    the governance setting at fault."""
    async with contextlib.AsyncExitStack() as stack:
        pool = await stack.enter_async_context(open_pool(settings))
        connection = await connect(
            amqp_url or settings.amqp_url.get_secret_value(),
            timeout_s=settings.connect_timeout.total_seconds(),
            name="recalculator",
        )
        stack.push_async_callback(connection.close)
        async with await connection.channel() as channel:
            await declare_topology(channel, settings.topology)
        relay = OutboxRelay(pool, connection, retention=settings.outbox_retention)
        session = await stack.enter_async_context(aiohttp.ClientSession())
        store = JobStore(pool, settings.events_exchange, on_commit=relay.wake)
        recalculation = build_recalculation(
            settings, pool, session, store, source=source, scorer=scorer, clock=clock
        )
        yield App(settings, pool, connection, session, relay, store, recalculation)
