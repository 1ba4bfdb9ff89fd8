"""The test harness: real Postgres and RabbitMQ, one schema and one set of broker names per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection

from contracts.topology import BrokerNames
from tests.harness.scratch import drop_schemas, remove_topology, topology_named
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
    await drop_schemas(database_url, name)


@pytest.fixture
async def topology(amqp_url: str, unique: str) -> AsyncIterator[BrokerNames]:
    """Exchange and queue names of this test's own, deleted from the broker afterwards."""
    topo = topology_named(f"test.{unique}")
    yield topo
    await remove_topology(amqp_url, topo)


@pytest.fixture
async def amqp(amqp_url: str) -> AsyncIterator[AbstractRobustConnection]:
    connection = await aio_pika.connect_robust(amqp_url)
    yield connection
    await connection.close()
