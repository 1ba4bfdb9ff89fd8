"""The re-attach watch's own control: it outlives failed and hanging attempts, stops when detached.

What an attempt does on the broker is tested against RabbitMQ in
``tests/integration/test_chassis_attachment.py``; here an attempt is a scripted coroutine.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest

from chassis.attachment import watch_attachment


class ScriptedAttachment:
    """Runs the n-th scripted step at the n-th attempt, then detaches itself."""

    def __init__(self, *steps: Callable[[], Awaitable[bool]]) -> None:
        self._steps = list(steps)
        self.attempts = 0
        self.detached = False

    async def reattach_if_lost(self) -> bool:
        self.attempts += 1
        step = self._steps.pop(0)
        if not self._steps:
            self.detached = True
        return await step()


async def broker_still_starting() -> bool:
    raise ConnectionRefusedError("connection refused")


async def hangs() -> bool:
    await asyncio.Event().wait()
    return True


async def reattached() -> bool:
    return True


async def test_the_watch_tries_again_after_an_attempt_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="chassis.attachment")
    attachment = ScriptedAttachment(broker_still_starting, broker_still_starting, reattached)

    await asyncio.wait_for(watch_attachment(attachment, interval_s=0.01), timeout=5)

    assert attachment.attempts == 3
    failure = (
        "could not check or re-attach the consumer: ConnectionRefusedError: connection refused"
    )
    logged = [r.getMessage() for r in caplog.records if r.name == "chassis.attachment"]
    assert logged == [failure, failure]


async def test_the_watch_abandons_a_hanging_attempt_and_tries_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="chassis.attachment")
    attachment = ScriptedAttachment(hangs, reattached)

    await asyncio.wait_for(
        watch_attachment(attachment, interval_s=0.01, attempt_timeout_s=0.05), timeout=5
    )

    assert attachment.attempts == 2
    assert any("TimeoutError" in r.getMessage() for r in caplog.records)


async def test_the_watch_returns_without_an_attempt_once_detached() -> None:
    attachment = ScriptedAttachment(reattached)
    attachment.detached = True

    await asyncio.wait_for(watch_attachment(attachment, interval_s=0.01), timeout=5)

    assert attachment.attempts == 0
