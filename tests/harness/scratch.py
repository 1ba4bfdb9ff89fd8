"""Names of one's own on the shared Postgres and RabbitMQ, and removing them afterwards.

A test, a chaos stack or a benchmark stage takes schemas and broker names nobody else uses
(``<prefix>.<id>.…``), so it never touches the demo's data or another run's, and removes them
when it ends, even after the broker or the database was restarted under it.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import aio_pika
import asyncpg
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_fixed

from chassis.broker import declare_topology
from chassis.topology import Topology
from contracts.topology import BrokerNames


def unique_suffix() -> str:
    """Ten hex digits, unique enough to keep concurrent runs' names apart."""
    return uuid.uuid4().hex[:10]


def topology_named(prefix: str) -> BrokerNames:
    """The exchange ``<prefix>.events`` and the services' queues under ``prefix``."""
    return BrokerNames(
        exchange=f"{prefix}.events",
        ledger_queue=f"{prefix}.job-ledger.events",
        notifier_queue=f"{prefix}.notifier.events",
        commands_queue=f"{prefix}.recalculator.commands",
    )


def service_env(
    database_url: str, amqp_url: str, topology: BrokerNames, **values: str
) -> dict[str, str]:
    """The variables a service reads to find this Postgres, this RabbitMQ and these broker
    names; ``values`` are added with their names upper-cased (``ledger_schema=…``)."""
    env = {
        "DATABASE_URL": database_url,
        "AMQP_URL": amqp_url,
        "EVENTS_EXCHANGE": topology.exchange,
        "LEDGER_QUEUE": topology.ledger_queue,
        "NOTIFIER_QUEUE": topology.notifier_queue,
        "COMMANDS_QUEUE": topology.commands_queue,
    }
    env.update({name.upper(): value for name, value in values.items()})
    return env


async def drop_schemas(database_url: str, *schemas: str, attempts: int = 1) -> None:
    """Drop each schema with everything in it; a schema that is not there is no error.

    Connecting is tried ``attempts`` times, 3 s apart, to wait out a Postgres restart; the
    last failure (``OSError``, ``asyncpg.PostgresError``) is raised.
    """
    retrying = AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=wait_fixed(3),
        retry=retry_if_exception_type((OSError, asyncpg.PostgresError)),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            conn = await asyncpg.connect(database_url)
    try:
        for schema in schemas:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def declare(amqp_url: str, topology: BrokerNames) -> None:
    """Declare ``topology``'s exchange and queues, as a service does when it starts
    (idempotent)."""
    connection = await aio_pika.connect(amqp_url)
    try:
        async with connection.channel() as channel:
            await declare_topology(channel, Topology.of(topology))
    finally:
        await connection.close()


async def remove_topology(amqp_url: str, topology: BrokerNames) -> None:
    """Delete the topology's queues, their dead-letter queues and its exchange; what is already
    gone is no error (each deletion on a channel of its own, as a failed one closes it)."""
    connection = await aio_pika.connect(amqp_url, timeout=10)
    try:
        for spec in Topology.of(topology).queues:
            for name in (spec.name, spec.dead_letter_queue):
                channel = await connection.channel()
                with contextlib.suppress(aio_pika.exceptions.AMQPError):
                    await channel.queue_delete(name)
        channel = await connection.channel()
        with contextlib.suppress(aio_pika.exceptions.AMQPError):
            await channel.exchange_delete(topology.exchange)
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def scratch_schema(database_url: str, prefix: str) -> AsyncIterator[str]:
    """A schema name ``<prefix>_<id>`` unique to this run; the schema (if it was made) is dropped
    on exit, waiting out a Postgres restart."""
    name = f"{prefix}_{unique_suffix()}"
    try:
        yield name
    finally:
        await drop_schemas(database_url, name, attempts=10)


@contextlib.asynccontextmanager
async def scratch_topology(amqp_url: str, prefix: str) -> AsyncIterator[BrokerNames]:
    """Broker names ``<prefix>.<id>.…`` unique to this run, declared; all deleted on exit (on a
    fresh connection: the broker may have been restarted meanwhile)."""
    topology = topology_named(f"{prefix}.{unique_suffix()}")
    await declare(amqp_url, topology)
    try:
        yield topology
    finally:
        await remove_topology(amqp_url, topology)
