"""Synthetic events on the wire, as the recalculator's outbox would publish them, for the stages
that load the broker, the ledger or the notifier without running a recalculation."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import aio_pika
import orjson

JOB_NAME = "weekly-gvs-recalculation"


@dataclass(frozen=True)
class WireEvent:
    """An event as the recalculator's outbox would publish it: routing key, body, properties."""

    event_id: str
    event_type: str
    routing_key: str
    body: bytes
    occurred_at: datetime

    def message(self) -> aio_pika.Message:
        """The AMQP message with the properties the README's event contract lists (as
        ``encode_event`` sets them)."""
        return aio_pika.Message(
            body=self.body,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=self.event_id,
            type=self.event_type,
            timestamp=self.occurred_at,
            headers={"schema_version": 1},
        )

    def properties(self) -> dict[str, object]:
        """The outbox's ``properties`` column for this event (what ``enqueue`` stores)."""
        return {
            "content_type": "application/json",
            "message_id": self.event_id,
            "type": self.event_type,
            "timestamp": self.occurred_at.isoformat(),
            "headers": {"schema_version": 1},
        }


_KEYS = {
    "JobStarted": "job.started",
    "DaoProcessed": "dao.processed",
    "DaoFailed": "dao.failed",
    "JobFinished": "job.finished",
}


def _wire(job_id: str, sequence: int, event_type: str, payload: dict[str, object]) -> WireEvent:
    event_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    body = orjson.dumps(
        {
            "event_id": event_id,
            "event_type": event_type,
            "schema_version": 1,
            "job_id": job_id,
            "job_name": JOB_NAME,
            "sequence": sequence,
            "occurred_at": now.isoformat(),
            "payload": payload,
        }
    )
    return WireEvent(event_id, event_type, f"{JOB_NAME}.{_KEYS[event_type]}", body, now)


def job_events(daos: int, *, fail_every: int = 0) -> list[WireEvent]:
    """One complete job: JobStarted, a DaoProcessed (or every ``fail_every``-th a DaoFailed)
    per DAO, and JobFinished, with contiguous sequences; ``daos + 2`` events."""
    job_id = str(uuid.uuid4())
    events = [_wire(job_id, 0, "JobStarted", {"daos_total": daos, "trigger": "cron"})]
    failed = 0
    for i in range(daos):
        dao = {"dao_id": f"dao-{i:06d}", "dao_name": f"DAO number {i}"}
        if fail_every and i % fail_every == fail_every - 1:
            failed += 1
            events.append(
                _wire(job_id, i + 1, "DaoFailed", {**dao, "error": "HTTP 502", "attempts": 3})
            )
        else:
            payload = {**dao, "score": round(40 + (i % 600) / 10, 2), "duration_ms": 12}
            events.append(_wire(job_id, i + 1, "DaoProcessed", payload))
    finished = {
        "status": "completed",
        "daos_total": daos,
        "daos_processed": daos - failed,
        "daos_failed": failed,
        "duration_ms": 61_000,
        "cache_invalidated": True,
        "fatal_error": None,
        "failures": [],
    }
    events.append(_wire(job_id, daos + 1, "JobFinished", finished))
    return events


def backlog(total: int, per_job: int = 1000) -> Iterator[WireEvent]:
    """``total`` events made of whole jobs of ``per_job`` events each (the last one shorter),
    generated lazily so that a million events never sit in memory at once."""
    left = total
    while left > 0:
        size = min(per_job, left)
        yield from job_events(max(0, size - 2))
        left -= max(size, 2)
