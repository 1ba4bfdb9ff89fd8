"""Fixtures several integration modules share, on top of the suite's services in ``tests/``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest
from aio_pika.abc import AbstractRobustConnection

from contracts.topology import BrokerNames
from tests.harness.stack import Stack
from tests.support.fake_resend import FakeResend
from tests.support.fake_slack import FakeSlack
from tests.support.ledger import open_ledger_pool
from tests.support.ledger_web import Ledger, served_ledger


@pytest.fixture
async def resend() -> AsyncIterator[FakeResend]:
    """A loopback Resend API that records what the notifier sends, for this test."""
    async with FakeResend() as fake:
        yield fake


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    """A loopback Slack webhook that records what the notifier posts, for this test."""
    async with FakeSlack() as fake:
        yield fake


@pytest.fixture
async def pool(database_url: str, schema: str) -> AsyncIterator[asyncpg.Pool]:
    """The job-ledger's tables, migrated into this test's schema, behind a pool."""
    pool = await open_ledger_pool(database_url, schema)
    yield pool
    await pool.close()


@pytest.fixture
async def ledger(pool: asyncpg.Pool) -> AsyncIterator[Ledger]:
    """The ledger's web app on ``pool``, served on a free loopback port for this test.

    It records run requests instead of publishing them (``ledger.published``).
    """
    async with served_ledger(pool) as served:
        yield served


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client for this test (the admin pages' tests keep cookies in their own)."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def stack(
    database_url: str,
    amqp_url: str,
    schema: str,
    topology: BrokerNames,
    amqp: AbstractRobustConnection,
) -> AsyncIterator[Stack]:
    """This test's schema, broker names, broker connection and reserved ports in one object."""
    test_stack = Stack(database_url, amqp_url, schema, topology, amqp)
    try:
        yield test_stack
    finally:
        test_stack.release_ports()
