"""The shapes of the API's JSON, as pydantic models with the wire's camelCase aliases.

They are the single statement of what the API answers: ``/openapi.json`` is generated from
them (:mod:`job_ledger.web.openapi`), schemathesis holds the served responses to them, and a
unit test holds every builder of :mod:`job_ledger.web.serialize` to its model, field for field
and in order. The builders, not the models, write the responses (the history API's speed).
A field the API adds is one field here, one line in ``serialize`` and the column it reads.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic.json_schema import SkipJsonSchema

from contracts.events import JOB_NAME_PATTERN

Timestamp = Annotated[datetime, Field(examples=["2025-12-22T00:05:32.000Z"])]
Count = Annotated[int, Field(ge=0)]
Positive = Annotated[int, Field(ge=1)]


class WireModel(BaseModel):
    """A JSON object of the API: camelCase keys, every key present, no other key."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class ErrorDetail(WireModel):
    message: str
    code: Literal[
        "BAD_REQUEST",
        "UNAUTHORIZED",
        "NOT_FOUND",
        "METHOD_NOT_ALLOWED",
        "CONFLICT",
        "INTERNAL",
        "UNAVAILABLE",
    ]
    status_code: int


class Error(WireModel):
    """Every error of the API, whatever its status."""

    error: ErrorDetail


class Failure(WireModel):
    dao_id: str
    dao_name: str
    error: str


class Notification(WireModel):
    """One alert delivery reported by the notifier (one per channel and kind): sent, failed
    (with the error after its attempts) or skipped (not tried because the channel is not
    configured, with the reason; error null, 0 attempts)."""

    channel: str = Field(examples=["email", "slack"])
    kind: str = Field(examples=["success", "failure", "abandoned"])
    state: Literal["sent", "failed", "skipped"]
    attempts: Count
    provider_id: str | None
    error: str | None
    reason: str | None
    occurred_at: Timestamp


class Progress(WireModel):
    """Live progress of a running job: DAOs done per second since it started, and the seconds
    left at that rate (null until a DAO is done)."""

    processed: Count
    failed: Count
    total: Count
    rate_per_second: Annotated[float, Field(ge=0)] | None
    eta_seconds: Count | None
    last_event_at: Timestamp | None


class JobLog(WireModel):
    """A job execution, or a schedule slot no run started for (outcome missed, its id the one
    in the missed alert's link): the story's fields (id … updatedAt), then what the ledger
    adds. progress is null unless the job is running."""

    id: UUID
    job_name: str
    started_at: Timestamp
    completed_at: Timestamp | None
    status: Literal["running", "completed", "failed"]
    daos_processed: Count
    daos_total: Count
    errors: list[Failure] | None
    duration_ms: Count | None
    cache_invalidated: bool
    created_at: Timestamp
    updated_at: Timestamp
    trigger: Annotated[str, Field(examples=["cron", "manual", "retry"])] | None
    daos_failed: Count
    fatal_error: str | None
    last_event_at: Timestamp | None
    abandoned_at: Timestamp | None
    outcome: Literal["running", "completed", "failed", "abandoned", "missed"] = Field(
        description="What became of it. abandoned: the watchdog found the run silent (status"
        " failed); missed: no run started within the grace of the schedule slot scheduledFor"
        " (status failed, trigger cron, no DAOs, the sentence in fatalError)."
    )
    scheduled_for: Timestamp | None
    events_received: Count
    expected_events: Count | None
    complete: bool = Field(description="Every event up to JobFinished has arrived.")
    notifications: list[Notification]
    progress: Progress | None


class ListMeta(WireModel):
    count: Count
    limit: Positive
    next_before: str | None = Field(
        description="The cursor of the next (older) page, to pass as before=; null on the last"
        " page (and with id).",
        examples=["1766361600123456,0b9e7a53-6f5c-4d4e-9a51-2d8f6c1e4b7a"],
    )


class JobLogList(WireModel):
    data: list[JobLog]
    meta: ListMeta


class JobEvent(WireModel):
    event_id: UUID
    event_type: str
    schema_version: int
    job_id: UUID
    job_name: str
    sequence: Count | None
    occurred_at: Timestamp
    received_at: Timestamp
    payload: dict[str, Any] = Field(
        description="The event's payload exactly as the event contract sent it."
    )


class EventPageMeta(WireModel):
    count: Count
    limit: Positive
    offset: Count
    total: Count


class JobEventList(WireModel):
    data: list[JobEvent]
    meta: EventPageMeta


class FailedDao(WireModel):
    dao_id: str
    dao_name: str


class FailureGroup(WireModel):
    error: str
    count: Positive
    daos: list[FailedDao]


class FailureGroupMeta(WireModel):
    count: Count
    failures: Count


class FailureGroupList(WireModel):
    data: list[FailureGroup]
    meta: FailureGroupMeta


class RunStatistics(WireModel):
    """Over the newest windowRuns (30) runs, which started from windowStart to windowEnd (null
    without runs): failureRate is failed / finished runs (a missed schedule slot is a failed
    run, counted in runsMissed too), the percentiles (nearest rank) are of finished runs'
    durations (a missed slot has none); lastSuccessAt is the newest completed run ever."""

    job_name: str | None
    runs: Count
    finished: Count
    completed: Count
    failed: Count
    runs_missed: Count
    running: Count
    failure_rate: Annotated[float, Field(ge=0, le=1)] | None
    duration_p50_ms: Count | None
    duration_p95_ms: Count | None
    last_success_at: Timestamp | None
    window_runs: Positive = Field(description="The statistics are over this many newest runs.")
    window_start: Timestamp | None = Field(
        description="startedAt of the oldest run in the window; null when there is none."
    )
    window_end: Timestamp | None = Field(
        description="startedAt of the newest run in the window; null when there is none."
    )


class JobStats(WireModel):
    data: RunStatistics


def _without_default(schema: dict[str, Any]) -> None:
    # An absent field is not a null one: the document must not offer null as its value.
    schema.pop("default", None)


class RunRequest(WireModel):
    """Optional body of POST /api/admin/jobs/run; both fields are optional."""

    job_name: Annotated[str, Field(pattern=JOB_NAME_PATTERN)] | SkipJsonSchema[None] = Field(
        None, json_schema_extra=_without_default
    )
    dao_ids: list[Annotated[str, Field(min_length=1)]] | None = Field(
        None, min_length=1, json_schema_extra=_without_default
    )


class AcceptedRun(WireModel):
    request_id: UUID
    job_name: str
    trigger: Literal["manual", "retry"]
    dao_ids: list[str] | None
    requested_at: Timestamp


class RunAccepted(WireModel):
    """The RunRequested the broker confirmed; what became of it is at
    GET /api/admin/run-requests/{requestId}."""

    data: AcceptedRun


class RunRequestState(WireModel):
    request_id: UUID
    job_name: str
    trigger: str = Field(examples=["manual", "retry", "cron"])
    state: Literal["pending", "accepted", "refused"]
    job_id: UUID | None
    reason: str | None
    requested_at: Timestamp | None
    answered_at: Timestamp | None


class RunRequestOutcome(WireModel):
    """What became of a run request: pending until the recalculator answers, then accepted
    (jobId: the job it started) or refused (reason: why nothing started). requestedAt is null
    for a request the ledger did not publish itself (CLI, cron)."""

    data: RunRequestState


DOCUMENTED: tuple[type[WireModel], ...] = (
    Error,
    JobLogList,
    JobEventList,
    FailureGroupList,
    JobStats,
    RunRequest,
    RunAccepted,
    RunRequestOutcome,
)
"""The models the OpenAPI document names (the models they hold are named with them)."""
