"""The recalculator against real services for tests: its settings, a Snapshot hub's spaces, DAOs.

Shared by the ``test_recalc_*`` integration tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from contracts import Topology
from recalculator.bootstrap import migrate_schema
from recalculator.config import Settings
from tests.support.snapshot_hub import HubSpace, hub_proposal


def recalc_settings(
    database_url: str, amqp_url: str, schema: str, topology: Topology, **overrides: Any
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
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.executemany(
            f'INSERT INTO "{settings.recalc_schema}".daos (id, name, snapshot_space, active)'
            " VALUES ($1, $2, $3, $4)",
            [(f"dao-{i:02}", f"DAO {i}", space_of(i), i not in inactive) for i in range(count)],
        )
    finally:
        await conn.close()
