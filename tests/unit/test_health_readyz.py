"""``/readyz`` says which dependency is down, never the text of the exception behind it."""

from __future__ import annotations

import asyncio

from chassis.health import run_checks


async def test_a_failing_check_is_answered_down_without_its_exception_text() -> None:
    async def database() -> str | None:
        raise OSError("connect to postgresql://app:hunter22@db.internal:5432 refused")

    async def broker() -> str | None:
        return "not connected to RabbitMQ"

    async def slow() -> str | None:
        await asyncio.sleep(10)
        return None

    async def fine() -> str | None:
        return None

    results = await run_checks({"database": database, "broker": broker, "fine": fine, "slow": slow})
    assert results == {
        "database": "down",
        "broker": "not connected to RabbitMQ",
        "fine": "ok",
        "slow": "no answer within 3s",
    }
