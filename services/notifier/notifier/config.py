"""The notifier's settings: one frozen object read from the environment in ``__main__``."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from chassis.settings import BaseServiceSettings, Duration


class Settings(BaseServiceSettings):
    """What the notifier reads, on top of the shared base (database, broker, logging).

    ``RESEND_API_KEY`` and ``SLACK_WEBHOOK_URL`` are optional: without them the channel's
    deliveries are recorded ``skipped`` (and said so in the log), the service still runs.
    """

    notifier_schema: str = "notifier"
    resend_api_key: SecretStr | None = None
    resend_api_url: str = "https://api.resend.com"
    email_from: str = "ChainSights <hello@chainsights.one>"
    alert_email_to: str = "hello@chainsights.one"
    email_transport: Literal["resend", "file"] = "resend"
    email_outbox_dir: Path = Path("var/emails")
    slack_webhook_url: SecretStr | None = None
    admin_base_url: str = "http://localhost:8080"
    # Only whether it is set matters here: with revalidation configured, a run that did not
    # revalidate the cache gets a warning instead of a green email.
    cache_revalidate_url: str | None = None
    notify_max_attempts: int = Field(default=5, ge=1, le=100)
    notify_timeout: Duration = timedelta(seconds=10)
    notify_backoff_max: Duration = timedelta(seconds=30)
    notify_resume_interval: Duration = timedelta(seconds=30)
    health_host: str = "0.0.0.0"
    health_port: int = Field(default=8081, ge=0, le=65535)

    @field_validator("resend_api_key", "slack_webhook_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # `RESEND_API_KEY=` in an .env file means "not configured", not "an empty key".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("cache_revalidate_url", mode="before")
    @classmethod
    def _blank_url_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("alert_email_to")
    @classmethod
    def _has_a_recipient(cls, value: str) -> str:
        if not [a for a in value.split(",") if a.strip()]:
            raise ValueError("needs at least one address (comma-separated for several)")
        return value

    @field_validator("notify_timeout", "notify_backoff_max", "notify_resume_interval")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than zero")
        return value

    @property
    def alert_recipients(self) -> list[str]:
        """``ALERT_EMAIL_TO`` split on commas, blanks dropped."""
        return [a.strip() for a in self.alert_email_to.split(",") if a.strip()]

    @property
    def revalidation_configured(self) -> bool:
        return self.cache_revalidate_url is not None
