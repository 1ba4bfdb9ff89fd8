"""The notifier's settings: one frozen object read from the environment in ``__main__``."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from chassis.local_time import UTC_ZONE, TimeZone
from chassis.retention import RetentionSettings
from chassis.settings import (
    BaseServiceSettings,
    HttpUrl,
    OptionalHttpUrl,
    OptionalSecret,
    OptionalSecretHttpUrl,
    PositiveDuration,
    TopologySettings,
)
from contracts.topology import BrokerNameSettings


class Settings(BaseServiceSettings, BrokerNameSettings, TopologySettings, RetentionSettings):
    """What the notifier reads, on top of the shared base (database, broker, logging).

    ``RESEND_API_KEY`` and ``SLACK_WEBHOOK_URL`` are optional: without them the channel's
    deliveries are recorded ``skipped`` (and said so in the log), the service still runs.
    """

    notifier_schema: str = "notifier"
    resend_api_key: OptionalSecret = None
    resend_api_url: HttpUrl = "https://api.resend.com"
    email_from: str = "ChainSights <hello@chainsights.one>"
    alert_email_to: str = "hello@chainsights.one"
    email_transport: Literal["resend", "file"] = "resend"
    email_outbox_dir: Path = Path("var/emails")
    slack_webhook_url: OptionalSecretHttpUrl = None
    admin_base_url: HttpUrl = "http://localhost:8080"
    admin_timezone: TimeZone = UTC_ZONE
    # Only whether it is set matters here: with revalidation configured, a run that did not
    # revalidate the cache gets a warning instead of a green email.
    cache_revalidate_url: OptionalHttpUrl = None
    notify_max_attempts: int = Field(default=5, ge=1, le=100)
    notify_timeout: PositiveDuration = timedelta(seconds=10)
    notify_backoff_max: PositiveDuration = timedelta(seconds=30)
    notify_resume_interval: PositiveDuration = timedelta(seconds=30)
    processed_mark_retention: PositiveDuration = timedelta(days=90)
    delivery_retention: PositiveDuration = timedelta(days=90)
    health_host: str = "0.0.0.0"  # noqa: S104 a container's port; HEALTH_HOST narrows it
    health_port: int = Field(default=8081, ge=0, le=65535)

    @field_validator("alert_email_to")
    @classmethod
    def _has_a_recipient(cls, value: str) -> str:
        if not [a for a in value.split(",") if a.strip()]:
            raise ValueError("needs at least one address (comma-separated for several)")
        return value

    @property
    def alert_recipients(self) -> list[str]:
        """``ALERT_EMAIL_TO`` split on commas, blanks dropped."""
        return [a.strip() for a in self.alert_email_to.split(",") if a.strip()]

    @property
    def revalidation_configured(self) -> bool:
        return self.cache_revalidate_url is not None
