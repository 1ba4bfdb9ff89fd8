"""Fixtures several integration modules share, on top of the suite's services in ``tests/``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.fake_resend import FakeResend
from tests.support.fake_slack import FakeSlack


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
