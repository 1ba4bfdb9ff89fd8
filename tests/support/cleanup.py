"""Removing what a test made on the shared services: its schemas and its broker names."""

from __future__ import annotations

import contextlib

import aio_pika
import asyncpg

from chassis.topology import Topology
from contracts.topology import BrokerNames


async def drop_schemas(database_url: str, *schemas: str) -> None:
    """Drop each schema with everything in it; a schema that is not there is no error."""
    conn = await asyncpg.connect(database_url)
    try:
        for schema in schemas:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def remove_topology(amqp_url: str, topology: BrokerNames) -> None:
    """Delete the topology's queues, their dead-letter queues and its exchange; what is already
    gone is no error (each deletion on a channel of its own, as a failed one closes it)."""
    connection = await aio_pika.connect(amqp_url)
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
