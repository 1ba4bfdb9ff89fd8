"""The composition root: builds the pool, the broker connection, the HTTP session, the source,
the relay and the run from settings, and hands each in explicitly. Nothing connects at import.

``async with bootstrap(settings) as app:`` opens everything in order and closes it in reverse;
tests pass overrides (``source=``, ``scorer=``, ``amqp_url=``) to swap one part.
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
from chassis.broker import connect
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
    """Everything a command needs, built once."""

    settings: Settings
    pool: asyncpg.Pool
    connection: AbstractRobustConnection | None
    session: aiohttp.ClientSession
    relay: OutboxRelay | None
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


@contextlib.asynccontextmanager
async def bootstrap(
    settings: Settings,
    *,
    with_broker: bool = True,
    source: GovernanceSource | None = None,
    scorer: Scorer = default_scorer,
    clock: Clock = utc_clock,
    amqp_url: str | None = None,
) -> AsyncIterator[App]:
    """Yields the wired ``App``; closes session, connection and pool on exit.

    ``with_broker=False`` builds no connection and no relay (commands that only read the
    database). Raises ``DatabaseUnavailable``, ``BrokerUnavailable``, or ``ValueError`` naming
    the governance setting at fault.
    """
    async with contextlib.AsyncExitStack() as stack:
        pool = await stack.enter_async_context(open_pool(settings))
        connection: AbstractRobustConnection | None = None
        relay: OutboxRelay | None = None
        if with_broker:
            connection = await connect(
                amqp_url or settings.amqp_url.get_secret_value(),
                timeout_s=settings.connect_timeout.total_seconds(),
                name="recalculator",
            )
            stack.push_async_callback(connection.close)
            relay = OutboxRelay(pool, connection, retention=settings.outbox_retention)
        session = await stack.enter_async_context(aiohttp.ClientSession())
        dao_timeout_s = settings.dao_timeout.total_seconds()
        if source is None:
            source = make_source(
                settings.governance_source,
                session=session,
                hub_url=settings.snapshot_hub_url,
                data_path=settings.governance_data,
                timeout_s=dao_timeout_s,
            )
        store = JobStore(
            pool, settings.events_exchange, on_commit=relay.wake if relay else lambda: None
        )
        revalidator = CacheRevalidator(
            session,
            settings.cache_revalidate_url,
            settings.cache_revalidate_secret,
            timeout_s=settings.cache_revalidate_timeout.total_seconds(),
        )
        recalculation = Recalculation(
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
        yield App(settings, pool, connection, session, relay, store, recalculation)
