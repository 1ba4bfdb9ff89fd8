"""Commands: requests to act, named in the imperative, consumed by exactly one service."""

from __future__ import annotations

from typing import Literal
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field

from contracts.events import JOB_NAME_PATTERN, Trigger, UtcDatetime, utc_now


class RunRequested(BaseModel):
    """Ask the recalculator to run a job: all active DAOs (``dao_ids`` null) or a subset."""

    model_config = ConfigDict(frozen=True)

    command_type: Literal["RunRequested"] = "RunRequested"
    schema_version: Literal[1] = 1
    request_id: UUID = Field(default_factory=uuid4)
    job_name: str = Field(default="weekly-gvs-recalculation", pattern=JOB_NAME_PATTERN)
    trigger: Trigger = "manual"
    requested_at: UtcDatetime = Field(default_factory=utc_now)
    dao_ids: list[str] | None = Field(default=None, max_length=100_000)
