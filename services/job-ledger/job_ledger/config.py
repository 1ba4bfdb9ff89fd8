"""The ledger's settings: one frozen object read from the environment in ``__main__``."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator, Field

from chassis.local_time import UTC_ZONE, TimeZone
from chassis.retention import OptionalRetention, RetentionSettings
from chassis.settings import (
    BaseServiceSettings,
    CronExpression,
    Duration,
    HttpUrl,
    OptionalSecret,
    OptionalText,
    PositiveDuration,
    TopologySettings,
)
from contracts.events import JOB_NAME_PATTERN
from contracts.topology import BrokerNameSettings
from job_ledger.credentials import ApiToken, api_tokens_valid, long_enough, parse_api_tokens
from job_ledger.proxies import Network, parse_trusted_proxies, trusted_proxies_valid

# A fixed salt is enough here: the derived secret only has to be unguessable without the
# password and stable across restarts (so sessions survive a redeploy).
_SESSION_KDF_SALT = b"chainsights-jobs/job-ledger/admin-session/v1"

LongSecret = Annotated[OptionalSecret, AfterValidator(long_enough)]
"""A secret of at least 16 characters, or unset."""
ApiTokens = Annotated[OptionalSecret, AfterValidator(api_tokens_valid)]
"""``name:token,name:token`` (:mod:`job_ledger.credentials`), or unset."""
TrustedProxies = Annotated[OptionalText, AfterValidator(trusted_proxies_valid)]
"""Addresses or networks, comma-separated (:mod:`job_ledger.proxies`), or unset."""


class Settings(BaseServiceSettings, BrokerNameSettings, TopologySettings, RetentionSettings):
    """What the ledger reads on top of the shared base (database, broker, logging).

    ``ADMIN_PASSWORD`` is required to serve: ``job-ledger serve`` refuses to start without it
    (the operations commands do not need it). ``SESSION_SECRET`` falls back to a key derived
    from it.
    """

    ledger_schema: str = "ledger"
    admin_password: LongSecret = None
    admin_api_tokens: ApiTokens = None
    trusted_proxies: TrustedProxies = None
    admin_base_url: HttpUrl = "http://localhost:8080"
    admin_timezone: TimeZone = UTC_ZONE
    session_secret: LongSecret = None
    job_name: str = Field(default="weekly-gvs-recalculation", pattern=JOB_NAME_PATTERN)
    job_schedule: CronExpression = "0 0 * * 1"
    job_grace: Duration = timedelta(hours=1)
    job_stale_after: PositiveDuration = timedelta(minutes=30)
    watchdog_interval: PositiveDuration = timedelta(seconds=30)
    watchdog_settle: Duration = timedelta(seconds=30)
    ledger_batch_size: int = Field(default=500, ge=1, le=5000)
    ledger_batch_wait: PositiveDuration = timedelta(milliseconds=50)
    schedule_check_retention: PositiveDuration = timedelta(days=90)
    job_history_retention: OptionalRetention = None
    ledger_metrics_interval: PositiveDuration = timedelta(seconds=15)
    http_host: str = "0.0.0.0"  # noqa: S104 a container's port; HTTP_HOST narrows it
    http_port: int = Field(default=8080, ge=0, le=65535)

    @property
    def api_tokens(self) -> tuple[ApiToken, ...]:
        """The named Bearer tokens of ``ADMIN_API_TOKENS`` (none when unset)."""
        if self.admin_api_tokens is None:
            return ()
        return parse_api_tokens(self.admin_api_tokens.get_secret_value())

    @property
    def trusted_proxy_networks(self) -> tuple[Network, ...]:
        """The networks of ``TRUSTED_PROXIES`` whose forwarded headers are believed."""
        return parse_trusted_proxies(self.trusted_proxies)

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
