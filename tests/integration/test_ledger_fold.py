"""The fold against the real Postgres schema: the SQL merge is the Python merge.

Live projection merges each batch's delta in SQL; :meth:`JobDelta.merged` is its specification,
and rebuild folds the whole history in Python. The property: for any generated job, delivering
its events shuffled, with duplicates, in random batches leaves after every batch the row that
the Python merge of the batches' deltas gives, and at the end the row that in-order delivery
gives, which is also the rebuilt row.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.events import (
    DaoProcessed,
    DaoProcessedPayload,
    Event,
    JobStarted,
    JobStartedPayload,
    NotificationFailed,
    NotificationSent,
)
from job_ledger.job_logs import load_rows
from job_ledger.job_row import COLUMNS, JobRow
from job_ledger.notifications import Outcome, latest_outcomes
from job_ledger.projection import JobDelta, fold_jobs, job_deltas
from job_ledger.rebuild import rebuild
from job_ledger.recording import record_events
from tests.support.ledger import open_ledger_pool
from tests.support.ledger_histories import T0, History, job_histories


async def deliver(pool: asyncpg.Pool, batches: list[list[Event]]) -> None:
    for batch in batches:
        async with pool.acquire() as conn, conn.transaction():
            await record_events(conn, batch)


async def deliver_checking_each_merge(
    pool: asyncpg.Pool, job_id: uuid.UUID, batches: list[list[Event]]
) -> None:
    """Deliver ``batches``; after each, the stored row is the Python merge of the deltas so far.

    A batch's delta folds the events the store has not seen before (as the ledger does).
    """
    seen: set[uuid.UUID] = set()
    merged: JobDelta | None = None
    for batch in batches:
        new: list[Event] = []
        for event in batch:
            if event.event_id not in seen:
                seen.add(event.event_id)
                new.append(event)
        delta = job_deltas(new).get(job_id)
        if delta is not None:
            merged = delta if merged is None else merged.merged(delta)
        await deliver(pool, [batch])
        expected: JobRow | None = None if merged is None else merged.row()
        async with pool.acquire() as conn:
            assert (await load_rows(conn, [job_id])).get(job_id) == expected


async def notifications(pool: asyncpg.Pool, job_id: uuid.UUID) -> list[tuple[object, ...]]:
    rows = await pool.fetch(
        "SELECT channel, kind, state, attempts, error, reason, occurred_at FROM job_notifications"
        " WHERE job_id = $1 ORDER BY channel, kind",
        job_id,
    )
    return [tuple(r) for r in rows]


def without_id(values: tuple[object, ...]) -> tuple[object, ...]:
    return values[COLUMNS.index("id") + 1 :]


def test_any_delivery_folds_to_the_in_order_row_and_rebuild_agrees(
    database_url: str, schema: str
) -> None:
    with asyncio.Runner() as runner:
        pool = runner.run(open_ledger_pool(database_url, schema))
        try:

            @settings(
                max_examples=30,
                deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture],
            )
            @given(history=job_histories(), data=st.data())
            def check(history: History, data: st.DataObject) -> None:
                in_order_job, shuffled_job = uuid.uuid4(), uuid.uuid4()
                in_order = history.events(in_order_job)
                events = history.events(shuffled_job)
                again = data.draw(st.lists(st.sampled_from(events), max_size=len(events)))
                delivered = data.draw(st.permutations([*events, *again]))
                cuts = sorted(data.draw(st.sets(st.integers(1, len(delivered)), max_size=4)))
                bounds = [0, *cuts, len(delivered)]
                batches = [delivered[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
                runner.run(_check(pool, in_order, batches, in_order_job, shuffled_job))

            check()
        finally:
            runner.run(pool.close())


async def _check(
    pool: asyncpg.Pool,
    in_order: list[Event],
    batches: list[list[Event]],
    in_order_job: uuid.UUID,
    shuffled_job: uuid.UUID,
) -> None:
    await deliver(pool, [[e] for e in in_order])
    await deliver_checking_each_merge(pool, shuffled_job, [b for b in batches if b])
    async with pool.acquire() as conn:
        rows = await load_rows(conn, [in_order_job, shuffled_job])
    expected = fold_jobs(in_order).get(in_order_job)
    if expected is None:  # only notifications arrived: no job_logs row either way
        assert rows == {}
    else:
        assert rows[in_order_job] == expected
        assert without_id(rows[shuffled_job].values()) == without_id(expected.values())
    assert await rebuild(pool, shuffled_job) == []
    # Ties (same occurred_at) are broken by event_id, which differs between the two jobs: so
    # compare each job's records with the latest outcome among its own events.
    shuffled = [e for batch in batches for e in batch]
    assert await notifications(pool, shuffled_job) == [
        (
            o.payload.channel,
            o.payload.kind,
            *_stored_outcome(o),
            o.occurred_at,
        )
        for o in latest_outcomes(shuffled)
    ]


async def test_a_20000_event_job_folds_in_batches_of_500_quickly(
    database_url: str, schema: str
) -> None:
    pool = await open_ledger_pool(database_url, schema)
    try:
        job_id = uuid.uuid4()
        events: list[Event] = [
            JobStarted(
                job_id=job_id,
                job_name="weekly-gvs-recalculation",
                occurred_at=T0,
                payload=JobStartedPayload(daos_total=19_999, trigger="cron"),
            )
        ]
        events += [
            DaoProcessed(
                job_id=job_id,
                job_name="weekly-gvs-recalculation",
                sequence=seq,
                occurred_at=T0 + timedelta(milliseconds=seq),
                payload=DaoProcessedPayload(
                    dao_id=f"dao-{seq}", dao_name="D", score=1, duration_ms=1
                ),
            )
            for seq in range(1, 20_000)
        ]
        started = time.monotonic()
        await deliver(pool, [events[i : i + 500] for i in range(0, len(events), 500)])
        elapsed = time.monotonic() - started
        print(f"\nfolded 20,000 events in 40 batches of 500: {elapsed:.2f}s")
        row = await pool.fetchrow("SELECT daos_processed, events_received FROM job_logs")
        assert tuple(row or ()) == (19_999, 20_000)
        # Bounded: the merge does not rescan the job's history per batch.
        assert elapsed < 20
        started = time.monotonic()
        assert await rebuild(pool, job_id) == []
        print(f"rebuilt the 20,000-event job in {time.monotonic() - started:.2f}s")
    finally:
        await pool.close()


def _stored_outcome(o: Outcome) -> tuple[str, int, str | None, str | None]:
    """The state, attempts, error and reason ``o`` is recorded with."""
    if isinstance(o, NotificationSent):
        return ("sent", o.payload.attempts, None, None)
    if isinstance(o, NotificationFailed):
        return ("failed", o.payload.attempts, o.payload.error, None)
    return ("skipped", 0, None, o.payload.reason)
