"""The recalculator's settings: one frozen object read from the environment in ``__main__``.

Every variable is documented in the service README (Settings). Durations are written like
``60s`` or ``30m``; a bad value stops the start with the variable's name in the message.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from croniter import croniter
from pydantic import Field, SecretStr, field_validator

from chassis.settings import BaseServiceSettings, Duration
from contracts.events import JOB_NAME_PATTERN
from recalculator.governance import DEFAULT_HUB_URL, SourceKind

JOB_NAME_DEFAULT = "weekly-gvs-recalculation"


class Settings(BaseServiceSettings):
    """What the recalculator reads from the environment; see the README's Settings table."""

    recalc_schema: str = Field(default="recalc", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    job_name: str = Field(default=JOB_NAME_DEFAULT, pattern=JOB_NAME_PATTERN)
    job_schedule: str = "0 0 * * 1"
    dao_concurrency: int = Field(default=8, ge=1, le=256)
    dao_timeout: Duration = timedelta(seconds=60)
    dao_retries: int = Field(default=2, ge=0, le=10)
    dao_retry_backoff: Duration = timedelta(seconds=1)
    governance_source: SourceKind = "snapshot"
    governance_data: Path | None = None
    snapshot_hub_url: str = DEFAULT_HUB_URL
    cache_revalidate_url: str | None = None
    cache_revalidate_secret: SecretStr | None = None
    cache_revalidate_timeout: Duration = timedelta(seconds=10)
    outbox_drain_timeout: Duration = timedelta(seconds=60)
    shutdown_grace: Duration = timedelta(seconds=30)
    health_host: str = "0.0.0.0"
    health_port: int = Field(default=8082, ge=0, le=65535)

    @field_validator("job_schedule")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        # A schedule that cannot fire must stop the cron container at start, not at midnight.
        if len(value.split()) != 5 or not croniter.is_valid(value):
            raise ValueError(
                f"{value!r} is not a cron expression (5 fields, UTC), e.g. '0 0 * * 1'"
            )
        return value

    @field_validator("cache_revalidate_url", "governance_data", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # .env files and compose write ``VAR=`` for "not set".
        return None if value == "" else value

    @field_validator("cache_revalidate_secret", mode="before")
    @classmethod
    def _empty_secret_is_unset(cls, value: object) -> object:
        return None if value == "" else value
