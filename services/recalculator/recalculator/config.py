"""The recalculator's settings: one frozen object read from the environment in ``__main__``.

Every variable is documented in the service README (Settings). Durations are written like
``60s`` or ``30m``; a bad value stops the start with the variable's name in the message.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

from chassis.settings import (
    BaseServiceSettings,
    CronExpression,
    Duration,
    HttpUrl,
    OptionalPath,
    OptionalSecret,
    OptionalText,
    TopologySettings,
)
from contracts.events import JOB_NAME_PATTERN
from contracts.topology import BrokerNameSettings
from recalculator.governance import DEFAULT_HUB_URL, RequestsPerMinute, SourceKind

JOB_NAME_DEFAULT = "weekly-gvs-recalculation"


def _http_url(value: str | None) -> str | None:
    # A URL aiohttp cannot post to would only show up as a warning after every run; it is a
    # configuration error, so it stops the start. The value is not echoed: it may hold a token.
    if value is None:
        return None
    try:
        parts = urlsplit(value)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        _ = parts.port  # raises ValueError for a port out of range
    except ValueError:
        valid = False
    if not valid:
        raise ValueError(
            "expected an http:// or https:// URL, like https://example.org/api/revalidate"
        )
    return value


OptionalHttpUrl = Annotated[OptionalText, AfterValidator(_http_url)]


class Settings(BaseServiceSettings, BrokerNameSettings, TopologySettings):
    """What the recalculator reads from the environment; see the README's Settings table."""

    recalc_schema: str = Field(default="recalc", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    job_name: str = Field(default=JOB_NAME_DEFAULT, pattern=JOB_NAME_PATTERN)
    job_schedule: CronExpression = "0 0 * * 1"
    dao_concurrency: int = Field(default=8, ge=1, le=256)
    dao_timeout: Duration = timedelta(seconds=60)
    dao_retries: int = Field(default=2, ge=0, le=10)
    dao_retry_backoff: Duration = timedelta(seconds=1)
    governance_source: SourceKind = "snapshot"
    governance_data: OptionalPath = None
    snapshot_hub_url: HttpUrl = DEFAULT_HUB_URL
    snapshot_api_key: OptionalSecret = None
    snapshot_rate_limit: RequestsPerMinute = None
    cache_revalidate_url: OptionalHttpUrl = None
    cache_revalidate_secret: OptionalSecret = None
    cache_revalidate_timeout: Duration = timedelta(seconds=10)
    outbox_drain_timeout: Duration = timedelta(seconds=60)
    shutdown_grace: Duration = timedelta(seconds=30)
    health_host: str = "0.0.0.0"  # noqa: S104 a container's port; HEALTH_HOST narrows it
    health_port: int = Field(default=8082, ge=0, le=65535)
