"""Playing a scenario's steps as the recalculator and the worker would, and waiting for them.

Each step's events are published with the times the step gives; then the step's expected
alerts must have settled in the ledger (the notifier reports each one) before the next step
starts, as runs days apart would.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from contracts import (
    DaoFailed,
    DaoFailedPayload,
    DaoProcessed,
    DaoProcessedPayload,
    Failure,
    JobFinished,
    JobFinishedPayload,
    JobStarted,
    JobStartedPayload,
    RunRefused,
    RunRefusedPayload,
    parse_command,
    utc_now,
)
from contracts.events import Envelope
from tests.alerts.scenarios import Died, RequestRefused, Run, SlotPassed, Step
from tests.alerts.stack import AlertStack

SETTLE_TIMEOUT_S = 30.0
FINAL_STATES = {"sent", "failed", "skipped"}


def run_events(run: Run, job_name: str, job_id: uuid.UUID, now: datetime) -> list[Envelope]:
    """JobStarted, one event per DAO (none after a fatal error), JobFinished: ``run`` as the
    recalculator would report it, at the times it gives."""
    started_at, finished_at = now + run.started, now + run.finished
    events: list[Envelope] = [
        JobStarted(
            job_id=job_id,
            job_name=job_name,
            occurred_at=started_at,
            payload=JobStartedPayload(daos_total=run.total, trigger=run.trigger, scope=run.scope),
        )
    ]
    done = 0 if run.fatal else run.total
    step = (finished_at - started_at) / (done + 1)
    failures: list[Failure] = []
    for n in range(1, done + 1):
        at, dao_id, name = started_at + step * n, f"dao-{n:03d}", f"DAO {n:03d}"
        if n <= run.failed:
            error = f"the hub answered 502 for {dao_id}"
            failures.append(Failure(dao_id=dao_id, dao_name=name, error=error))
            payload_f = DaoFailedPayload(dao_id=dao_id, dao_name=name, error=error, attempts=3)
            events.append(
                DaoFailed(
                    job_id=job_id, job_name=job_name, sequence=n, occurred_at=at, payload=payload_f
                )
            )
        else:
            payload_p = DaoProcessedPayload(
                dao_id=dao_id, dao_name=name, score=50.0, duration_ms=100
            )
            events.append(
                DaoProcessed(
                    job_id=job_id, job_name=job_name, sequence=n, occurred_at=at, payload=payload_p
                )
            )
    failed = 0 if run.fatal else run.failed
    events.append(
        JobFinished(
            job_id=job_id,
            job_name=job_name,
            sequence=done + 1,
            occurred_at=finished_at,
            payload=JobFinishedPayload(
                status=run.status,
                daos_total=run.total,
                daos_processed=done - failed,
                daos_failed=failed,
                duration_ms=int((finished_at - started_at).total_seconds() * 1000),
                cache_invalidated=run.cache_invalidated,
                fatal_error=run.fatal,
                failures=failures[:100],
                scope=run.scope,
            ),
        )
    )
    return events


def died_events(died: Died, job_name: str, job_id: uuid.UUID, now: datetime) -> list[Envelope]:
    """JobStarted and ``processed`` DAOs, the last of them ``silent_for`` ago."""
    last = now - died.silent_for
    events: list[Envelope] = [
        JobStarted(
            job_id=job_id,
            job_name=job_name,
            occurred_at=last - timedelta(minutes=1),
            payload=JobStartedPayload(daos_total=died.total, trigger="cron", scope="all"),
        )
    ]
    for n in range(1, died.processed + 1):
        payload = DaoProcessedPayload(
            dao_id=f"dao-{n:03d}", dao_name=f"DAO {n:03d}", score=50.0, duration_ms=100
        )
        events.append(
            DaoProcessed(
                job_id=job_id, job_name=job_name, sequence=n, occurred_at=last, payload=payload
            )
        )
    return events


class Playback:
    """Plays steps on a stack and remembers which job or request each label became."""

    def __init__(self, stack: AlertStack) -> None:
        self.stack = stack
        self.ids: dict[str, uuid.UUID] = {}

    async def publish_step(self, step: Step) -> None:
        """Publish what ``step`` makes happen, without waiting for its consequences."""
        if isinstance(step, Run | Died):
            job_id = uuid.uuid4()
            self.ids[step.label] = job_id
            now = utc_now()
            build = run_events if isinstance(step, Run) else died_events
            events = build(step, self.stack.job_name, job_id, now)  # type: ignore[arg-type]
            for event in events:
                await self.stack.publish(event)
            if isinstance(step, Run):
                for _ in range(step.copies - 1):
                    await self.stack.publish(events[-1])
        elif isinstance(step, RequestRefused):
            self.ids[step.label] = await self._refuse_a_request(step)

    async def play(
        self, step: Step, expected: set[tuple[str, str]], *, published: bool = False
    ) -> None:
        """Publish ``step`` (unless it was ``published`` already), then wait until its
        ``expected`` (channel, kind) have settled."""
        if not published:
            await self.publish_step(step)
        if isinstance(step, SlotPassed):
            if expected:
                self.ids[step.label] = uuid.UUID(str((await self._missed_slot())["id"]))
            else:
                return
        if isinstance(step, RequestRefused):
            await self._until(
                lambda: self.stack.get(f"/api/admin/run-requests/{self.ids[step.label]}"),
                lambda body: (body.get("data") or {}).get("state") == "refused",
                f"{step.label}: the refusal reached the ledger",
            )
            return
        await self._until(
            lambda: self.stack.get(f"/api/admin/job-logs?id={self.ids[step.label]}"),
            lambda body: _settled(body, expected),
            f"{step.label}: alerts {sorted(expected)} settled",
        )

    async def jobs(self) -> list[dict[str, Any]]:
        """Every job the ledger shows for the scenario's job name, newest first."""
        body = await self.stack.get(f"/api/admin/job-logs?jobName={self.stack.job_name}&limit=100")
        return list(body["data"])

    async def _missed_slot(self) -> dict[str, Any]:
        async def missed() -> dict[str, Any] | None:
            found = [j for j in await self.jobs() if j.get("outcome") == "missed"]
            return found[0] if found else None

        job: dict[str, Any] = await self._until(
            missed, lambda found: found is not None, "the missed slot's row"
        )
        return job

    async def _refuse_a_request(self, step: RequestRefused) -> uuid.UUID:
        """Press "Start a new run" through the API, then answer as a busy worker would."""
        status, body = await self.stack.post("/api/admin/jobs/run")
        assert status == 202, body
        request_id = uuid.UUID(body["data"]["requestId"])
        channel = await self.stack.amqp.channel()
        queue = await channel.get_queue(self.stack.topology.commands_queue)
        # A consumer, as the worker is: the commands queue has a single active consumer, which
        # RabbitMQ does not let basic.get read.
        received: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        tag = await queue.consume(received.put)
        message = await asyncio.wait_for(received.get(), SETTLE_TIMEOUT_S)
        await message.ack()
        await queue.cancel(tag)
        command = parse_command(message.body)
        assert command.request_id == request_id and command.job_name == self.stack.job_name
        await self.stack.publish(
            RunRefused(
                job_id=request_id,
                job_name=command.job_name,
                payload=RunRefusedPayload(
                    request_id=request_id, trigger=command.trigger, reason=step.reason
                ),
            )
        )
        await channel.close()
        return request_id

    async def _until(
        self, probe: Callable[[], Awaitable[Any]], done: Callable[[Any], bool], what: str
    ) -> Any:
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        value = None
        while time.monotonic() < deadline:
            value = await probe()
            if done(value):
                return value
            await asyncio.sleep(0.2)
        raise AssertionError(f"not seen within {SETTLE_TIMEOUT_S}s: {what}; last: {value!r}")


def _settled(body: dict[str, Any], expected: set[tuple[str, str]]) -> bool:
    jobs = body.get("data") or []
    if not jobs:
        return False
    notes = {(n["channel"], n["kind"]): n["state"] for n in jobs[0].get("notifications") or []}
    return all(notes.get(key) in FINAL_STATES for key in expected) and (
        bool(expected) or jobs[0]["status"] != "running"
    )
