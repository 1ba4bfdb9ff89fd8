"""The test harness: real Postgres and RabbitMQ, one schema and one set of broker names per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import aio_pika
import asyncpg
import pytest
from aio_pika.abc import AbstractRobustConnection

from contracts.topology import Topology
from tests.support.services import ServiceUrls, service_urls


@pytest.fixture(scope="session")
def services() -> Iterator[ServiceUrls]:
    with service_urls() as urls:
        yield urls


@pytest.fixture(scope="session")
def database_url(services: ServiceUrls) -> str:
    return services.database_url


@pytest.fixture(scope="session")
def amqp_url(services: ServiceUrls) -> str:
    return services.amqp_url


@pytest.fixture
def unique() -> str:
    """A short id unique to this test, for schema, exchange and queue names."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
async def schema(database_url: str, unique: str) -> AsyncIterator[str]:
    """A fresh Postgres schema for this test, dropped afterwards."""
    name = f"t_{unique}"
    yield name
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
async def topology(amqp_url: str, unique: str) -> AsyncIterator[Topology]:
    """Exchange and queue names of this test's own, deleted from the broker afterwards."""
    topo = Topology(
        exchange=f"test.{unique}.events",
        ledger_queue=f"test.{unique}.job-ledger.events",
        notifier_queue=f"test.{unique}.notifier.events",
        commands_queue=f"test.{unique}.recalculator.commands",
    )
    yield topo
    connection = await aio_pika.connect(amqp_url)
    try:
        for spec in topo.queues():
            for name in (spec.name, spec.dead_letter_queue):
                channel = await connection.channel()
                try:
                    await channel.queue_delete(name)
                except aio_pika.exceptions.AMQPError:
                    pass
        channel = await connection.channel()
        try:
            await channel.exchange_delete(topo.exchange)
        except aio_pika.exceptions.AMQPError:
            pass
    finally:
        await connection.close()


@pytest.fixture
async def amqp(amqp_url: str) -> AsyncIterator[AbstractRobustConnection]:
    connection = await aio_pika.connect_robust(amqp_url)
    yield connection
    await connection.close()
