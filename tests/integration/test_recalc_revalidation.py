"""Cache revalidation after a run, against a loopback endpoint that records what it received.

What the website is sent (a POST with the Bearer secret, the job and the DAOs scored) and what
JobFinished then says in ``cache_invalidated``: true only for a 2xx answer; false for a 5xx,
a timeout, a refused connection or no ``CACHE_REVALIDATE_URL`` at all. JobFinished is read
from a tap queue bound to the test's exchange (real RabbitMQ, real Postgres).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aio_pika.abc import AbstractRobustConnection

from contracts import JobFinished, JobFinishedPayload, parse_event
from recalculator.bootstrap import bootstrap
from recalculator.config import Settings
from recalculator.run import RunRequest
from tests.harness.stack import Stack
from tests.support.broker import collect, tap_exchange
from tests.support.fake_resend import Reply
from tests.support.recalc import GatedSource, seed_daos
from tests.support.revalidation_endpoint import REVALIDATE_PATH, RevalidationEndpoint

SECRET = "revalidation-secret-7f3a"


@pytest.fixture
async def endpoint() -> AsyncIterator[RevalidationEndpoint]:
    async with RevalidationEndpoint() as endpoint:
        yield endpoint


@pytest.fixture
async def base(stack: Stack) -> Settings:
    settings = stack.recalc_settings()
    await seed_daos(settings, 3)
    return settings


async def run_job(
    settings: Settings, amqp: AbstractRobustConnection, **revalidation: Any
) -> JobFinished:
    """One run of every DAO with the revalidation settings given; returns its JobFinished."""
    settings = Settings(**{**settings.model_dump(), **revalidation})
    tap = await tap_exchange(amqp, settings.broker_names, "#.job.finished")
    source = GatedSource()
    source.open()
    async with bootstrap(settings, source=source) as app:
        assert app.relay is not None
        relay = asyncio.create_task(app.relay.run())
        try:
            await app.recalculation.run(RunRequest(settings.job_name, "manual"))
            assert await app.relay.drain(10) == 0
        finally:
            relay.cancel()
            await asyncio.gather(relay, return_exceptions=True)
    [message] = await collect(tap, 1)
    finished = parse_event(message.body)
    assert isinstance(finished, JobFinished)
    return finished


def revalidating(endpoint_url: str, timeout: str = "10s") -> dict[str, Any]:
    return {
        "cache_revalidate_url": endpoint_url,
        "cache_revalidate_secret": SECRET,
        "cache_revalidate_timeout": timeout,
    }


def summary(payload: JobFinishedPayload) -> tuple[str, int, bool]:
    return payload.status, payload.daos_processed, payload.cache_invalidated


async def test_a_2xx_answer_to_the_post_with_the_bearer_secret_is_cache_invalidated(
    stack: Stack, base: Settings, endpoint: RevalidationEndpoint
) -> None:
    finished = await run_job(base, stack.amqp, **revalidating(endpoint.revalidate_url))

    assert summary(finished.payload) == ("completed", 3, True)
    [request] = endpoint.requests
    assert (request.method, request.path) == ("POST", REVALIDATE_PATH)
    assert request.header("Authorization") == f"Bearer {SECRET}"
    assert request.header("Content-Type") == "application/json"
    assert request.json == {
        "job_id": str(finished.job_id),
        "dao_ids": ["dao-00", "dao-01", "dao-02"],
    }


async def test_a_5xx_answer_is_tried_twice_then_not_invalidated(
    stack: Stack, base: Settings, endpoint: RevalidationEndpoint
) -> None:
    endpoint.script(Reply(503, {"error": "busy"}), Reply(500, {"error": "broken"}))

    finished = await run_job(base, stack.amqp, **revalidating(endpoint.revalidate_url))

    assert summary(finished.payload) == ("completed", 3, False)
    assert [r.header("Authorization") for r in endpoint.requests] == [f"Bearer {SECRET}"] * 2


async def test_a_5xx_then_a_2xx_is_invalidated_on_the_retry(
    stack: Stack, base: Settings, endpoint: RevalidationEndpoint
) -> None:
    endpoint.script(Reply(502, text="bad gateway"))

    finished = await run_job(base, stack.amqp, **revalidating(endpoint.revalidate_url))

    assert summary(finished.payload) == ("completed", 3, True)
    assert len(endpoint.requests) == 2


async def test_a_4xx_answer_is_not_retried_and_not_invalidated(
    stack: Stack, base: Settings, endpoint: RevalidationEndpoint
) -> None:
    endpoint.script(Reply(401, {"error": "bad secret"}))

    finished = await run_job(base, stack.amqp, **revalidating(endpoint.revalidate_url))

    assert summary(finished.payload) == ("completed", 3, False)
    assert len(endpoint.requests) == 1


async def test_an_endpoint_slower_than_the_timeout_is_not_invalidated_and_the_run_completes(
    stack: Stack, base: Settings, endpoint: RevalidationEndpoint
) -> None:
    endpoint.script(Reply(hang=True), Reply(hang=True))

    finished = await run_job(base, stack.amqp, **revalidating(endpoint.revalidate_url, "200ms"))

    assert summary(finished.payload) == ("completed", 3, False)
    assert len(endpoint.requests) == 2


async def test_a_refused_connection_is_not_invalidated_and_the_secret_is_not_logged(
    stack: Stack, base: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    nothing_listens = f"http://127.0.0.1:{stack.port()}{REVALIDATE_PATH}"
    caplog.set_level(logging.INFO)

    finished = await run_job(base, stack.amqp, **revalidating(nothing_listens))

    assert summary(finished.payload) == ("completed", 3, False)
    failures = [
        r.getMessage() for r in caplog.records if "cache revalidation failed" in r.getMessage()
    ]
    assert len(failures) == 1 and "Connect" in failures[0], failures
    assert SECRET not in caplog.text


async def test_without_a_url_nothing_is_sent_and_the_cache_is_not_invalidated(
    stack: Stack, base: Settings, endpoint: RevalidationEndpoint
) -> None:
    finished = await run_job(base, stack.amqp, cache_revalidate_secret=SECRET)

    assert summary(finished.payload) == ("completed", 3, False)
    assert endpoint.requests == []
