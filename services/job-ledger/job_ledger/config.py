"""The ledger's settings: one frozen object read from the environment in ``__main__``."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from croniter import croniter
from pydantic import Field, SecretStr, field_validator

from chassis.settings import BaseServiceSettings, Duration
from contracts.events import JOB_NAME_PATTERN

# A fixed salt is enough here: the derived secret only has to be unguessable without the
# password and stable across restarts (so sessions survive a redeploy).
_SESSION_KDF_SALT = b"chainsights-jobs/job-ledger/admin-session/v1"


class Settings(BaseServiceSettings):
    """What the ledger reads on top of the shared base (database, broker, logging).

    ``ADMIN_PASSWORD`` is required to serve: ``job-ledger serve`` refuses to start without it
    (the operations commands do not need it). ``SESSION_SECRET`` falls back to a key derived
    from it.
    """

    ledger_schema: str = "ledger"
    admin_password: SecretStr | None = None
    admin_base_url: str = "http://localhost:8080"
    session_secret: SecretStr | None = None
    job_name: str = Field(default="weekly-gvs-recalculation", pattern=JOB_NAME_PATTERN)
    job_schedule: str = "0 0 * * 1"
    job_grace: Duration = timedelta(hours=1)
    job_stale_after: Duration = timedelta(minutes=30)
    watchdog_interval: Duration = timedelta(seconds=30)
    ledger_batch_size: int = Field(default=500, ge=1, le=5000)
    ledger_batch_wait: Duration = timedelta(milliseconds=50)
    http_host: str = "0.0.0.0"
    http_port: int = Field(default=8080, ge=0, le=65535)

    @field_validator("admin_password", "session_secret", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("job_schedule")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        if not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a cron expression (like '0 0 * * 1')")
        return value

    @field_validator("job_stale_after", "watchdog_interval", "ledger_batch_wait")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than zero")
        return value

    @field_validator("job_grace")
    @classmethod
    def _not_negative(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("must not be negative")
        return value

    def session_secret_value(self) -> str:
        """``SESSION_SECRET``, or a key derived from ``ADMIN_PASSWORD`` by scrypt (CPU: ~50 ms).

        Deterministic, so every ledger process and every restart signs sessions alike.
        """
        if self.session_secret is not None:
            return self.session_secret.get_secret_value()
        if self.admin_password is None:
            raise ValueError("ADMIN_PASSWORD is not set")
        key = hashlib.scrypt(
            self.admin_password.get_secret_value().encode(),
            salt=_SESSION_KDF_SALT,
            n=2**14,
            r=8,
            p=1,
            dklen=32,
        )
        return key.hex()
