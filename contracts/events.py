"""The events every service publishes and consumes: the public contract of chainsights-jobs.

Frozen pydantic models with a ``Literal`` discriminator on ``event_type``. Construct one with
the fields that matter; ``event_id``, ``schema_version`` and ``occurred_at`` default to a new
UUID, the current version and now.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal
from uuid import UUID, uuid4

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1
"""The only envelope version this code knows; a consumer rejects any other."""

MAX_ERROR_CHARS = 2000
MAX_FAILURES_IN_FINISHED = 100
JOB_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,99}$"
"""Job names go into routing keys, so no dots, no wildcards, no spaces."""


def _as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_as_utc)]
ErrorText = Annotated[str, Field(max_length=MAX_ERROR_CHARS)]
Trigger = Literal["cron", "manual", "retry"]
JobStatus = Literal["completed", "failed"]
Scope = Literal["all", "subset"]
"""What a run covers: every active DAO of the registry, or DAOs chosen by id (a retry, say)."""
Channel = Literal["email", "slack"]
NotificationKind = Literal["success", "failure", "abandoned", "missed", "recovered", "warning"]


def utc_now() -> datetime:
    return datetime.now(UTC)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Failure(_Frozen):
    dao_id: str = Field(min_length=1)
    dao_name: str
    error: ErrorText


class JobStartedPayload(_Frozen):
    daos_total: int = Field(ge=0)
    trigger: Trigger
    # Optional so that events of producers that predate it stay valid; absent means unknown,
    # and a consumer must not take such a run for one of the whole registry.
    scope: Scope | None = None


class DaoProcessedPayload(_Frozen):
    dao_id: str = Field(min_length=1)
    dao_name: str
    score: float = Field(ge=0, le=100)
    duration_ms: int = Field(ge=0)


class DaoFailedPayload(_Frozen):
    dao_id: str = Field(min_length=1)
    dao_name: str
    error: ErrorText
    attempts: int = Field(ge=1)


class JobFinishedPayload(_Frozen):
    status: JobStatus
    daos_total: int = Field(ge=0)
    daos_processed: int = Field(ge=0)
    daos_failed: int = Field(ge=0)
    duration_ms: int = Field(ge=0)
    cache_invalidated: bool
    fatal_error: ErrorText | None = None
    failures: list[Failure] = Field(default_factory=list, max_length=MAX_FAILURES_IN_FINISHED)
    scope: Scope | None = None


class JobAbandonedPayload(_Frozen):
    last_event_at: UtcDatetime
    stale_after_s: int = Field(ge=0)


class JobMissedPayload(_Frozen):
    scheduled_for: UtcDatetime
    grace_s: int = Field(ge=0)


class NotificationSentPayload(_Frozen):
    channel: Channel
    kind: NotificationKind
    attempts: int = Field(ge=0)
    provider_id: str | None = None


class NotificationFailedPayload(_Frozen):
    channel: Channel
    kind: NotificationKind
    attempts: int = Field(ge=0)
    error: ErrorText


class NotificationSkippedPayload(_Frozen):
    channel: Channel
    kind: NotificationKind
    reason: ErrorText


class RunAcceptedPayload(_Frozen):
    request_id: UUID
    trigger: Trigger
    scope: Scope
    daos_requested: int | None = Field(default=None, ge=0)


class RunRefusedPayload(_Frozen):
    request_id: UUID
    trigger: Trigger
    reason: ErrorText


class Envelope(_Frozen):
    """The fields every event carries (the README's "The event contract")."""

    event_id: UUID = Field(default_factory=uuid4)
    schema_version: Literal[1] = 1
    job_id: UUID
    job_name: str = Field(pattern=JOB_NAME_PATTERN)
    sequence: int | None = Field(default=None, ge=0)
    occurred_at: UtcDatetime = Field(default_factory=utc_now)


class JobStarted(Envelope):
    event_type: Literal["JobStarted"] = "JobStarted"
    sequence: int = Field(default=0, ge=0, le=0)
    payload: JobStartedPayload


class DaoProcessed(Envelope):
    event_type: Literal["DaoProcessed"] = "DaoProcessed"
    sequence: int = Field(ge=1)
    payload: DaoProcessedPayload


class DaoFailed(Envelope):
    event_type: Literal["DaoFailed"] = "DaoFailed"
    sequence: int = Field(ge=1)
    payload: DaoFailedPayload


class JobFinished(Envelope):
    event_type: Literal["JobFinished"] = "JobFinished"
    sequence: int = Field(ge=1)
    payload: JobFinishedPayload


class JobAbandoned(Envelope):
    event_type: Literal["JobAbandoned"] = "JobAbandoned"
    sequence: None = None
    payload: JobAbandonedPayload


class JobMissed(Envelope):
    event_type: Literal["JobMissed"] = "JobMissed"
    sequence: None = None
    payload: JobMissedPayload


class NotificationSent(Envelope):
    event_type: Literal["NotificationSent"] = "NotificationSent"
    sequence: None = None
    payload: NotificationSentPayload


class NotificationFailed(Envelope):
    event_type: Literal["NotificationFailed"] = "NotificationFailed"
    sequence: None = None
    payload: NotificationFailedPayload


class NotificationSkipped(Envelope):
    """An alert that was not sent because its channel is not configured: no failure."""

    event_type: Literal["NotificationSkipped"] = "NotificationSkipped"
    sequence: None = None
    payload: NotificationSkippedPayload


class RunAccepted(Envelope):
    """The recalculator took a RunRequested; ``job_id`` is the run it started."""

    event_type: Literal["RunAccepted"] = "RunAccepted"
    sequence: None = None
    payload: RunAcceptedPayload


class RunRefused(Envelope):
    """The recalculator refused a RunRequested and started nothing.

    No run exists, so ``job_id`` is the request's id (``payload.request_id``).
    """

    event_type: Literal["RunRefused"] = "RunRefused"
    sequence: None = None
    payload: RunRefusedPayload


Event = Annotated[
    JobStarted
    | DaoProcessed
    | DaoFailed
    | JobFinished
    | JobAbandoned
    | JobMissed
    | NotificationSent
    | NotificationFailed
    | NotificationSkipped
    | RunAccepted
    | RunRefused,
    Field(discriminator="event_type"),
]

EVENT_TYPES: dict[str, type[Envelope]] = {
    "JobStarted": JobStarted,
    "DaoProcessed": DaoProcessed,
    "DaoFailed": DaoFailed,
    "JobFinished": JobFinished,
    "JobAbandoned": JobAbandoned,
    "JobMissed": JobMissed,
    "NotificationSent": NotificationSent,
    "NotificationFailed": NotificationFailed,
    "NotificationSkipped": NotificationSkipped,
    "RunAccepted": RunAccepted,
    "RunRefused": RunRefused,
}

ROUTING_KINDS: dict[str, str] = {
    "JobStarted": "job.started",
    "DaoProcessed": "dao.processed",
    "DaoFailed": "dao.failed",
    "JobFinished": "job.finished",
    "JobAbandoned": "job.abandoned",
    "JobMissed": "job.missed",
    "NotificationSent": "notification.sent",
    "NotificationFailed": "notification.failed",
    "NotificationSkipped": "notification.skipped",
    "RunAccepted": "run.accepted",
    "RunRefused": "run.refused",
}


def routing_key(event: Envelope) -> str:
    """The topic routing key ``<job_name>.<kind>`` an event is published under."""
    return f"{event.job_name}.{ROUTING_KINDS[type(event).__name__]}"


def truncate_error(text: str) -> str:
    """Shorten an error text to what the contract allows, saying that it was cut."""
    if len(text) <= MAX_ERROR_CHARS:
        return text
    marker = " …[truncated]"
    return text[: MAX_ERROR_CHARS - len(marker)] + marker
