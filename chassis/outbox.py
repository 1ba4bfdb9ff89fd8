"""The transactional outbox: write a message in the caller's transaction, relay it later.

:func:`enqueue` stores an ``aio_pika.Message`` in ``outbox`` inside the transaction of the work
it reports, so the message exists if and only if the work committed. :class:`OutboxRelay`
publishes unsent rows in id order with publisher confirms and ``mandatory=True`` and marks a
row sent only once the broker confirmed it and some queue took it. A broker outage or an
unbound exchange delays messages; it never loses them. Publishing is at least once: consumers
deduplicate by ``message_id``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import orjson
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection
from prometheus_client import Counter, Gauge

from chassis.broker import publisher_channel
from chassis.database import Connection
from chassis.migrations import MigrationSource, quote_ident

log = logging.getLogger(__name__)

MIGRATIONS = MigrationSource("chassis.outbox", Path(__file__).parent / "sql")

OUTBOX_PUBLISHED = Counter(
    "outbox_published_total", "Outbox rows published and confirmed by the broker"
)
OUTBOX_PUBLISH_FAILURES = Counter(
    "outbox_publish_failures_total", "Outbox publishes not confirmed (kept for retry)"
)
OUTBOX_PENDING = Gauge("outbox_pending", "Outbox rows not yet confirmed by the broker")


OUTBOX_COLUMNS = "outbox (message_id, exchange, routing_key, body, properties)"
"""The columns a message is written into, in this order: the message id, the exchange, the
routing key, the body and :func:`message_properties` (for the chassis's own statements)."""


def message_properties(message: aio_pika.Message) -> str:
    """The ``properties`` column for ``message`` (JSON): what the relay rebuilds it from.

    For the chassis's statements that write an outbox row (see ``enqueue``).
    """
    properties = {
        "content_type": message.content_type,
        "message_id": message.message_id,
        "type": message.type,
        "timestamp": message.timestamp.isoformat() if message.timestamp else None,
        "headers": dict(message.headers or {}),
    }
    return orjson.dumps(properties).decode()


def _message(body: bytes, props: dict[str, Any]) -> aio_pika.Message:
    return aio_pika.Message(
        body=body,
        content_type=props.get("content_type"),
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=props.get("message_id"),
        type=props.get("type"),
        timestamp=datetime.fromisoformat(props["timestamp"]) if props.get("timestamp") else None,
        headers=props.get("headers") or {},
    )


async def enqueue(
    conn: Connection, exchange: str, routing_key: str, message: aio_pika.Message
) -> None:
    """Store ``message`` for publishing to ``exchange`` under ``routing_key``.

    Call it inside the transaction that does the work the message reports.
    """
    await conn.execute(
        f"INSERT INTO {OUTBOX_COLUMNS} VALUES ($1, $2, $3, $4, $5)",  # noqa: S608 the outbox's constant columns
        message.message_id or "",
        exchange,
        routing_key,
        message.body,
        message_properties(message),
    )


async def copy_outbox(
    conn: Connection, source_schema: str, target_schema: str, exchange: str
) -> None:
    """Enqueue in ``target_schema``'s outbox, for ``exchange``, a copy of every message in
    ``source_schema``'s, in order (a benchmark replaying a real run's messages, say)."""
    await conn.execute(
        f"INSERT INTO {quote_ident(target_schema)}.{OUTBOX_COLUMNS}"  # noqa: S608 quoted schema names
        " SELECT message_id, $1, routing_key, body, properties"
        f" FROM {quote_ident(source_schema)}.outbox ORDER BY id",
        exchange,
    )


async def pending_count(pool: asyncpg.Pool) -> int:
    """How many rows wait for a confirm."""
    return int(await pool.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))


class OutboxRelay:
    """Publishes outbox rows in order with confirms; retries with backoff while the broker is away.

    Several relays (processes) may run against one outbox: rows are claimed with
    ``FOR UPDATE SKIP LOCKED``, which also sees rows whose transactions committed late (a
    relay that polled "id greater than the last seen" would skip them).
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        connection: AbstractRobustConnection,
        *,
        batch_size: int = 500,
        idle_interval_s: float = 0.2,
        linger_s: float = 0.05,
        max_backoff_s: float = 15.0,
        retention: timedelta = timedelta(days=7),
    ) -> None:
        self._pool = pool
        self._connection = connection
        self._batch_size = batch_size
        self._idle_interval_s = idle_interval_s
        self._linger_s = linger_s
        self._max_backoff_s = max_backoff_s
        self._retention = retention
        self._channel: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._wake = asyncio.Event()
        self.last_error: str | None = None

    def wake(self) -> None:
        """Ask the relay to look now instead of at its next poll (after a commit, say)."""
        self._wake.set()

    async def _exchange(self, name: str) -> AbstractExchange:
        if self._channel is None or self._channel.is_closed:
            self._channel = await publisher_channel(self._connection)
            self._exchanges.clear()
        if name not in self._exchanges:
            self._exchanges[name] = (
                self._channel.default_exchange
                if name == ""
                else await self._channel.get_exchange(name, ensure=False)
            )
        return self._exchanges[name]

    async def relay_once(self) -> int:
        """Publish one batch of unsent rows; return how many were confirmed.

        Raises the broker's or the database's error when nothing could be published at all.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, exchange, routing_key, body, properties FROM outbox"
                " WHERE sent_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                self._batch_size,
            )
            if not rows:
                return 0
            publishes = []
            for row in rows:
                exchange = await self._exchange(row["exchange"])
                message = _message(row["body"], orjson.loads(row["properties"]))
                publishes.append(exchange.publish(message, row["routing_key"], mandatory=True))
            # A window of publishes in flight; each confirm (or return) settles one row.
            results = await asyncio.gather(*publishes, return_exceptions=True)
            outcomes = list(zip(rows, results, strict=True))
            sent = [row["id"] for row, res in outcomes if not _failed(res)]
            failed = [(row["id"], res) for row, res in outcomes if _failed(res)]
            if sent:
                await conn.execute(
                    "UPDATE outbox SET sent_at = now(), attempts = attempts + 1"
                    " WHERE id = ANY($1::bigint[])",
                    sent,
                )
            if failed:
                error = _describe(failed[0][1])
                await conn.execute(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = $2"
                    " WHERE id = ANY($1::bigint[])",
                    [row_id for row_id, _ in failed],
                    error,
                )
        OUTBOX_PUBLISHED.inc(len(sent))
        if failed:
            OUTBOX_PUBLISH_FAILURES.inc(len(failed))
            self.last_error = _describe(failed[0][1])
            if not sent:
                raise OutboxPublishError(
                    f"{len(failed)} outbox rows not confirmed: {self.last_error}"
                )
            log.warning(
                "%d outbox rows not confirmed, kept for retry: %s", len(failed), self.last_error
            )
        return len(sent)

    async def run(self) -> None:
        """Relay until cancelled; never gives up on a row, backs off while publishing fails."""
        failures = 0
        next_prune = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                sent = await self.relay_once()
                if failures:
                    log.info("outbox relay publishing again after %d failed attempts", failures)
                failures = 0
                self.last_error = None
                if loop.time() >= next_prune:
                    await self.prune()
                    next_prune = loop.time() + 600
                OUTBOX_PENDING.set(await pending_count(self._pool))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any broker or database fault: keep rows, back off
                failures += 1
                self.last_error = _describe(exc)
                self._channel = None
                delay = min(self._max_backoff_s, 0.2 * 2 ** min(failures, 10))
                delay *= random.uniform(0.5, 1.0)  # noqa: S311 jitter, not a secret
                log.warning(
                    "outbox relay cannot publish (attempt %d, retry in %.1fs): %s",
                    failures,
                    delay,
                    self.last_error,
                )
                await asyncio.sleep(delay)
                continue
            if sent < self._batch_size:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self._idle_interval_s)
                except TimeoutError:
                    pass
                else:
                    # Woken by a commit: let the commits right behind it join the batch. A
                    # producer committing row by row would otherwise cost one relay
                    # transaction (and one fsync) per row.
                    await asyncio.sleep(self._linger_s)

    async def drain(self, timeout_s: float) -> int:
        """Relay until nothing is pending or ``timeout_s`` passed; return how many still wait."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            try:
                while await self.relay_once():
                    pass
            except Exception as exc:
                self.last_error = _describe(exc)
                self._channel = None
            left = await pending_count(self._pool)
            if left == 0 or asyncio.get_running_loop().time() >= deadline:
                return left
            await asyncio.sleep(0.5)

    async def prune(self) -> int:
        """Delete rows sent longer ago than the retention; return how many."""
        result: str = await self._pool.execute(
            "DELETE FROM outbox WHERE sent_at < now() - $1::interval", self._retention
        )
        return int(result.split()[-1])


class OutboxPublishError(RuntimeError):
    """No row of a batch was confirmed: the broker is away or nothing takes the messages."""


def _failed(result: object) -> bool:
    return isinstance(result, BaseException)


def _describe(exc: object) -> str:
    if isinstance(exc, aio_pika.exceptions.DeliveryError | aio_pika.exceptions.PublishError):
        return f"message returned by the broker (no queue bound?): {exc!r}"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
