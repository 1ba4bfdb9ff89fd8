"""The run on the real Postgres and RabbitMQ, against a loopback Snapshot hub.

What arrives on the exchange is read from a tap queue bound to the test's own exchange.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import datetime

import asyncpg
import orjson
import pytest
from aio_pika.abc import AbstractQueue

from contracts import (
    DaoFailed,
    DaoFailedPayload,
    DaoProcessed,
    DaoProcessedPayload,
    Event,
    JobFinished,
    JobFinishedPayload,
    JobStarted,
    JobStartedPayload,
    parse_event,
)
from recalculator.bootstrap import App, bootstrap
from recalculator.config import Settings
from recalculator.run import RunRequest
from recalculator.run_lock import run_lock
from recalculator.scoring import GovernanceData, GvsScore
from tests.harness.stack import Stack
from tests.support.broker import collect, drain, tap_exchange
from tests.support.recalc import hub_spaces, seed_daos, space_of
from tests.support.snapshot_hub import Fault, SnapshotHub

JOB = "weekly-gvs-recalculation"


@contextlib.asynccontextmanager
async def relaying(app: App) -> AsyncIterator[None]:
    """The outbox relay running beside the job, drained at the end, as `recalculator run` does."""
    assert app.relay is not None
    task = asyncio.create_task(app.relay.run())
    try:
        yield
        assert await app.relay.drain(10) == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def events_of_one_job(queue: AbstractQueue, count: int) -> list[Event]:
    events = [parse_event(m.body) for m in await collect(queue, count, timeout_s=30)]
    assert len({e.job_id for e in events}) == 1
    assert await drain(queue, quiet_s=0.3) == [], "no event beyond JobFinished"
    return events


def started_of(events: Sequence[Event]) -> JobStartedPayload:
    assert isinstance(events[0], JobStarted)
    return events[0].payload


def finished_of(events: Sequence[Event]) -> JobFinishedPayload:
    assert isinstance(events[-1], JobFinished)
    return events[-1].payload


def processed_of(events: Sequence[Event]) -> dict[str, DaoProcessedPayload]:
    return {e.payload.dao_id: e.payload for e in events if isinstance(e, DaoProcessed)}


def failed_of(events: Sequence[Event]) -> dict[str, DaoFailedPayload]:
    return {e.payload.dao_id: e.payload for e in events if isinstance(e, DaoFailed)}


def assert_contiguous(events: Sequence[Event]) -> None:
    assert [e.sequence for e in events] == list(range(len(events)))
    assert events[0].event_type == "JobStarted"
    assert events[-1].event_type == "JobFinished"


@pytest.fixture
def settings(stack: Stack) -> Settings:
    return stack.recalc_settings()


async def test_fifty_daos_with_twelve_failing_complete_with_every_event_in_sequence(
    stack: Stack, settings: Settings
) -> None:
    await seed_daos(settings, 50)
    queue = await tap_exchange(stack.amqp, stack.topology)
    async with SnapshotHub(hub_spaces(50)) as hub:
        failing = {
            **{space_of(i): Fault.HANG for i in (3, 13, 23, 33)},
            **{space_of(i): Fault.SERVER_ERROR for i in (5, 15, 25, 35)},
            **{space_of(i): Fault.MALFORMED_JSON for i in (7, 17, 27, 37)},
        }
        for space, fault in failing.items():
            hub.misbehave(space, fault)
        hub.misbehave(space_of(40), Fault.SERVER_ERROR, times=2)  # recovers on its 3rd attempt
        app_settings = settings.model_copy(update={"snapshot_hub_url": hub.url})
        async with bootstrap(app_settings) as app, relaying(app):
            outcome = await app.recalculation.run(RunRequest(JOB, "manual"))
            scores = await app.pool.fetch("SELECT dao_id, score, components FROM gvs_scores")
        assert hub.validation_errors == []

    events = await events_of_one_job(queue, 52)
    assert_contiguous(events)
    processed, failed = processed_of(events), failed_of(events)
    assert len(processed) == 38
    failing_ids = [f"dao-{i:02}" for i in (3, 13, 23, 33, 5, 15, 25, 35, 7, 17, 27, 37)]
    assert sorted(failed) == sorted(failing_ids)
    assert {failed["dao-03"].attempts, failed["dao-05"].attempts} == {3}, "transient: 2 retries"
    assert failed["dao-07"].attempts == 1, "malformed JSON is permanent"
    assert "within 1s" in failed["dao-03"].error
    assert "HTTP 500" in failed["dao-05"].error
    assert "malformed JSON" in failed["dao-07"].error

    assert (started_of(events).daos_total, started_of(events).scope) == (50, "all")
    payload = finished_of(events)
    assert payload.scope == "all"
    assert outcome.status == "completed"
    assert (payload.status, payload.daos_processed, payload.daos_failed) == ("completed", 38, 12)
    assert sorted(f.dao_id for f in payload.failures) == sorted(failed)
    assert payload.cache_invalidated is False
    assert payload.fatal_error is None

    assert len(scores) == 38
    assert "dao-40" in {r["dao_id"] for r in scores}
    assert {r["dao_id"]: float(r["score"]) for r in scores} == {
        dao_id: p.score for dao_id, p in processed.items()
    }
    components = [orjson.loads(r["components"]) for r in scores]
    assert all(
        set(c) == {"activity", "participation", "decisiveness", "recency"} for c in components
    )


async def test_thirty_of_fifty_failing_fails_the_job(stack: Stack, settings: Settings) -> None:
    await seed_daos(settings, 50)
    queue = await tap_exchange(stack.amqp, stack.topology)
    async with SnapshotHub(hub_spaces(50)) as hub:
        for i in range(30):
            hub.misbehave(space_of(i), Fault.WRONG_SHAPE)
        app_settings = settings.model_copy(update={"snapshot_hub_url": hub.url})
        async with bootstrap(app_settings) as app, relaying(app):
            outcome = await app.recalculation.run(RunRequest(JOB, "manual"))
            rows = await app.pool.fetch("SELECT status, daos_processed, daos_failed FROM jobs")

    events = await events_of_one_job(queue, 52)
    assert_contiguous(events)
    finished = finished_of(events)
    assert (finished.status, finished.daos_processed, finished.daos_failed) == ("failed", 20, 30)
    assert finished.fatal_error is None
    assert outcome.status == "failed"
    assert [dict(r) for r in rows] == [
        {"status": "failed", "daos_processed": 20, "daos_failed": 30}
    ]


async def test_a_scoring_crash_stops_the_run_and_fails_it_with_the_fatal_error(
    stack: Stack, settings: Settings
) -> None:
    await seed_daos(settings, 20)
    queue = await tap_exchange(stack.amqp, stack.topology)

    def crash_on_dao_07(data: GovernanceData, now: datetime) -> GvsScore:
        from recalculator.scoring import score_governance

        if data.dao_id == "dao-07":
            raise ZeroDivisionError("division by zero")
        return score_governance(data, now=now)

    async with SnapshotHub(hub_spaces(20)) as hub:
        app_settings = settings.model_copy(
            update={"snapshot_hub_url": hub.url, "dao_concurrency": 2}
        )
        async with bootstrap(app_settings, scorer=crash_on_dao_07) as app, relaying(app):
            outcome = await app.recalculation.run(RunRequest(JOB, "manual"))
            scored = await app.pool.fetchval("SELECT count(*) FROM gvs_scores")

    assert outcome.finished is not None
    count = 2 + outcome.finished.daos_processed + outcome.finished.daos_failed
    events = await events_of_one_job(queue, count)
    assert_contiguous(events)
    finished = finished_of(events)
    assert finished.status == "failed"
    assert finished.fatal_error == (
        "scoring crashed on DAO dao-07: ZeroDivisionError: division by zero"
    )
    assert finished.daos_total == 20
    assert finished.daos_processed < 20, "the remaining DAOs were stopped"
    assert scored == finished.daos_processed


async def test_a_run_of_named_daos_says_subset_in_job_started_and_job_finished(
    stack: Stack, settings: Settings
) -> None:
    await seed_daos(settings, 4)
    queue = await tap_exchange(stack.amqp, stack.topology)
    async with SnapshotHub(hub_spaces(4)) as hub:
        app_settings = settings.model_copy(update={"snapshot_hub_url": hub.url})
        async with bootstrap(app_settings) as app, relaying(app):
            outcome = await app.recalculation.run(RunRequest(JOB, "retry", ("dao-01", "dao-03")))

    events = await events_of_one_job(queue, 4)
    assert started_of(events).model_dump() == {
        "daos_total": 2,
        "trigger": "retry",
        "scope": "subset",
    }
    assert (finished_of(events).scope, finished_of(events).daos_processed) == ("subset", 2)
    assert outcome.status == "completed"


@pytest.mark.parametrize(
    ("inactive", "asked", "reason"),
    [
        ((), ("dao-01", "gone", "also-gone"), "unknown DAO ids: also-gone, gone"),
        ((2,), ("dao-01", "dao-02"), "inactive DAO ids: dao-02"),
        ((2,), ("gone", "dao-02"), "unknown DAO ids: gone; inactive DAO ids: dao-02"),
    ],
)
async def test_unknown_or_inactive_dao_ids_refuse_the_run_naming_them_and_write_nothing(
    settings: Settings, inactive: tuple[int, ...], asked: tuple[str, ...], reason: str
) -> None:
    await seed_daos(settings, 3, inactive=inactive)
    async with bootstrap(settings) as app:
        outcome = await app.recalculation.run(RunRequest(JOB, "retry", dao_ids=asked))
        written = await app.pool.fetchval(
            "SELECT (SELECT count(*) FROM jobs) + (SELECT count(*) FROM outbox)"
        )

    assert (outcome.status, outcome.message, outcome.job_id) == ("refused", reason, None)
    assert written == 0


async def test_no_active_daos_completes_with_zero_of_zero(stack: Stack, settings: Settings) -> None:
    await seed_daos(settings, 2, inactive=(0, 1))
    queue = await tap_exchange(stack.amqp, stack.topology)
    async with bootstrap(settings) as app, relaying(app):
        outcome = await app.recalculation.run(RunRequest(JOB, "cron"))

    events = await events_of_one_job(queue, 2)
    assert_contiguous(events)
    assert started_of(events).model_dump() == {"daos_total": 0, "trigger": "cron", "scope": "all"}
    finished = finished_of(events)
    assert (finished.status, finished.daos_total, finished.daos_processed) == ("completed", 0, 0)
    assert outcome.status == "completed"


async def test_two_runs_started_at_once_run_exactly_once(stack: Stack, settings: Settings) -> None:
    await seed_daos(settings, 5)
    queue = await tap_exchange(stack.amqp, stack.topology)
    async with SnapshotHub(hub_spaces(5)) as hub:
        app_settings = settings.model_copy(update={"snapshot_hub_url": hub.url})
        async with (
            bootstrap(app_settings) as first,
            bootstrap(app_settings) as second,
            relaying(first),
        ):
            outcomes = await asyncio.gather(
                first.recalculation.run(RunRequest(JOB, "manual")),
                second.recalculation.run(RunRequest(JOB, "cron")),
            )
            jobs = await first.pool.fetch("SELECT id, trigger FROM jobs")

    assert sorted(o.status for o in outcomes) == ["completed", "refused"]
    refused = next(o for o in outcomes if o.status == "refused")
    assert len(jobs) == 1
    going = f"a run of {JOB} is already going"
    # The running job is named once its row is written; the two runs started at once.
    assert refused.message in {going, f"{going} (job {jobs[0]['id']})"}
    assert refused.job_id is None
    events = await events_of_one_job(queue, 7)
    assert {e.job_id for e in events} == {jobs[0]["id"]}


async def test_a_run_is_refused_while_another_process_holds_the_lock_and_writes_nothing(
    settings: Settings,
) -> None:
    await seed_daos(settings, 2)
    async with bootstrap(settings) as app:
        other = await asyncpg.create_pool(
            settings.database_url.get_secret_value(),
            min_size=1,
            max_size=1,
            server_settings={"search_path": settings.recalc_schema},
        )
        try:
            async with run_lock(other, JOB) as held:
                assert held
                outcome = await app.recalculation.run(RunRequest(JOB, "manual"))
            after = await app.recalculation.run(RunRequest(JOB, "manual", dao_ids=("dao-00",)))
        finally:
            await other.close()
        outbox_jobs = await app.pool.fetchval("SELECT count(DISTINCT body) FROM outbox")
    assert outcome.status == "refused"
    assert after.status == "failed" or after.status == "completed", "lock released after"
    assert outbox_jobs == 2 + 1, "only the second run's three events were written"
