"""Retention: what a service keeps only for a while, deleted by the service itself in small batches.

A service names a :class:`PruneRule` per kind of row it keeps for a while: a label (the table
it prunes), how long rows are kept, and ONE statement that deletes at most ``$2`` rows older
than ``$1`` (an interval), so that each batch is one short transaction::

    DELETE FROM processed_events WHERE ctid IN (
        SELECT ctid FROM processed_events WHERE processed_at < now() - $1::interval LIMIT $2)

:class:`Retention` runs every rule every ``interval``: batch after batch until a batch deletes
fewer rows than the limit, pausing between batches so that the service's own work is never
held up for long, and counts what it deleted in ``retention_pruned_rows_total{table}``. A
round the database is away for is logged and tried again at the next interval; any other
error is a bug in a statement and ends the run (the service stops with it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

import asyncpg
from prometheus_client import Counter
from pydantic import AfterValidator, BaseModel, BeforeValidator

from chassis.retry import describe, is_transient_database_error
from chassis.runner import Component
from chassis.settings import PositiveDuration, parse_duration

log = logging.getLogger(__name__)

BATCH_SIZE = 1000
"""Rows one batch deletes at most: one short transaction, a few milliseconds of locks."""

BATCH_PAUSE_S = 0.05
"""The pause between two batches, which leaves the database to the service's own work."""

PRUNED_ROWS = Counter(
    "retention_pruned_rows_total", "Rows deleted because they outlived their retention", ["table"]
)


def _optional_duration(value: Any) -> timedelta | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return parse_duration(value)


def _positive_or_unset(value: timedelta | None) -> timedelta | None:
    if value is not None and value <= timedelta(0):
        raise ValueError("must be longer than zero (leave it unset to keep everything)")
    return value


OptionalRetention = Annotated[
    timedelta | None, BeforeValidator(_optional_duration), AfterValidator(_positive_or_unset)
]
"""A retention an operator may leave unset, which keeps the rows for ever."""


class RetentionSettings(BaseModel):
    """A settings mixin: ``RETENTION_INTERVAL``, how often a service prunes (default 1 hour)."""

    retention_interval: PositiveDuration = timedelta(hours=1)


@dataclass(frozen=True)
class PruneRule:
    """Rows of ``table`` older than ``keep``, and the statement that deletes one batch of them.

    ``statement`` takes ``$1`` (``keep``, an interval) and ``$2`` (the batch's limit) and
    deletes at most ``$2`` rows; its command tag's row count is what the metric counts.
    """

    table: str
    keep: timedelta
    statement: str


class Retention:
    """Runs a service's prune rules every ``interval`` (see the module docstring)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        rules: Sequence[PruneRule],
        *,
        interval: timedelta,
        batch_size: int = BATCH_SIZE,
        pause_s: float = BATCH_PAUSE_S,
    ) -> None:
        self._pool = pool
        self._rules = tuple(rules)
        self._interval_s = interval.total_seconds()
        self._batch_size = batch_size
        self._pause_s = pause_s
        for rule in self._rules:
            PRUNED_ROWS.labels(rule.table)  # every table's series exists before its first prune

    @property
    def rules(self) -> tuple[PruneRule, ...]:
        """The rules each round runs, in order."""
        return self._rules

    async def run(self) -> None:
        """Prune every ``interval`` until cancelled, the first round at once.

        A round the database is away for is logged and skipped; raises any other error.
        """
        while True:
            try:
                await self.prune_once()
            except Exception as exc:
                if not is_transient_database_error(exc):
                    raise
                log.warning("retention round skipped, database unavailable: %s", describe(exc))
            await asyncio.sleep(self._interval_s)

    async def prune_once(self) -> dict[str, int]:
        """Run every rule to the end once; return the rows deleted, by table.

        Idempotent: a second round right after deletes nothing. Raises the database's error.
        """
        pruned: dict[str, int] = {}
        for rule in self._rules:
            pruned[rule.table] = pruned.get(rule.table, 0) + await self.prune(rule)
        return pruned

    async def prune(self, rule: PruneRule) -> int:
        """Delete ``rule``'s rows in batches until a batch finds fewer than the limit; return
        how many were deleted. Each batch commits on its own."""
        total = 0
        while True:
            tag: str = await self._pool.execute(rule.statement, rule.keep, self._batch_size)
            deleted = int(tag.split()[-1])
            total += deleted
            PRUNED_ROWS.labels(rule.table).inc(deleted)
            if deleted < self._batch_size:
                break
            await asyncio.sleep(self._pause_s)
        if total:
            log.info("pruned %d %s rows older than %s", total, rule.table, rule.keep)
        return total


def retention_component(retention: Retention) -> Component:
    """``retention`` as a part the chassis runner runs: pruning needs no drain, it is cancelled
    at stop (a batch cut short rolls back and is deleted at the next round)."""
    return Component("retention", retention.run)
