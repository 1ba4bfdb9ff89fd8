"""The recalculator against real services for tests: its settings, a Snapshot hub's spaces, DAOs,
the worker in this process, and a governance source that holds a run going.

Shared by the ``test_recalc_*`` integration tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from contracts import BrokerNames
from recalculator.bootstrap import migrate_schema
from recalculator.config import Settings
from recalculator.daos import DaoRef
from recalculator.governance import GovernanceSource
from recalculator.scoring import GovernanceData
from recalculator.worker import Worker
from tests.harness.scratch import service_env
from tests.support.snapshot_hub import HubSpace, hub_proposal

REPO = Path(__file__).resolve().parents[2]


def recalc_settings(
    database_url: str, amqp_url: str, schema: str, topology: BrokerNames, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "amqp_url": amqp_url,
        "recalc_schema": schema,
        "events_exchange": topology.exchange,
        "ledger_queue": topology.ledger_queue,
        "notifier_queue": topology.notifier_queue,
        "commands_queue": topology.commands_queue,
        "dao_timeout": "1s",
        "dao_retry_backoff": "50ms",
        "health_host": "127.0.0.1",
        "health_port": 0,
        "shutdown_grace": "5s",
        "outbox_drain_timeout": "10s",
    }
    values.update(overrides)
    return Settings(**values)


def recalc_env(
    database_url: str, amqp_url: str, schema: str, topology: BrokerNames
) -> dict[str, str]:
    """The environment a ``recalculator`` process reads for this test's schema and broker names
    on top of this one's: governance from the sample file, a 5 s DAO timeout, JSON logs at INFO."""
    return {
        **os.environ,
        **service_env(database_url, amqp_url, topology),
        "RECALC_SCHEMA": schema,
        "GOVERNANCE_SOURCE": "file",
        "GOVERNANCE_DATA": str(REPO / "data" / "governance.sample.json"),
        "DAO_TIMEOUT": "5s",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
    }


def space_of(i: int) -> str:
    return f"dao-{i:02}.eth"


def hub_spaces(count: int) -> list[HubSpace]:
    now = int(datetime.now(UTC).timestamp())
    return [
        HubSpace(
            space_of(i),
            [
                hub_proposal(
                    space_of(i), f"p{i}-{k}", created=now - (k + 1) * 86_400 * 7, votes=10 * (i + 1)
                )
                for k in range(3)
            ],
            followers_count=1000,
        )
        for i in range(count)
    ]


async def seed_daos(settings: Settings, count: int, inactive: Sequence[int] = ()) -> None:
    await migrate_schema(settings)
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        await conn.executemany(
            f'INSERT INTO "{settings.recalc_schema}".daos (id, name, snapshot_space, active)'
            " VALUES ($1, $2, $3, $4)",
            [(f"dao-{i:02}", f"DAO {i}", space_of(i), i not in inactive) for i in range(count)],
        )
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def running_worker(
    settings: Settings, *, source: GovernanceSource | None = None, watch_interval_s: float = 5.0
) -> AsyncIterator[Worker]:
    """The worker in this process, consuming once this enters; stopped (SIGTERM's way) after."""
    worker = Worker(settings, source=source, watch_interval_s=watch_interval_s)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    ready = asyncio.create_task(worker.ready.wait())
    await asyncio.wait({task, ready}, timeout=20, return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():
        ready.cancel()
        if task.done():
            task.result()  # raises what stopped the start
        task.cancel()
        raise AssertionError("the worker did not start consuming within 20s")
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


class GatedSource:
    """A governance source whose fetches wait until :meth:`open`: a run that stays going.

    Each DAO then has no proposal (it scores 0).
    """

    def __init__(self) -> None:
        self._gate = asyncio.Event()
        self.fetching = 0

    def open(self) -> None:
        self._gate.set()

    async def fetch(self, dao: DaoRef, since: datetime) -> GovernanceData:
        self.fetching += 1
        await self._gate.wait()
        return GovernanceData(dao_id=dao.id)

    async def waiting(self) -> int:
        """How many fetches wait at the gate (a probe for ``eventually``)."""
        return self.fetching
