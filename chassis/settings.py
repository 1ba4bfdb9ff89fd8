"""The typed settings base every service's settings object extends.

Environment variables only, read once in ``__main__`` through :func:`load_settings`, which turns
pydantic's validation error into a :class:`SettingsError` naming each bad variable.
Durations are written like ``30m``, ``1h``, ``90s``, ``500ms`` or ``1h30m``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, TypeVar
from urllib.parse import urlsplit

from croniter import croniter
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from chassis.broker_urls import parse_amqp_urls
from chassis.settings_sources import (
    FileVariables,
    SettingsFileError,
    url_with_password,
    urls_with_password,
)
from chassis.topology import Subscribers, Topology

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> timedelta:
    """Return the ``timedelta`` for ``30m``-style text, a number of seconds, or a timedelta.

    Raises ``ValueError`` naming the accepted forms.
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    text = str(value).strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return timedelta(seconds=float(text))
    if not text or _DURATION_PART.sub("", text):
        raise ValueError(f"{value!r} is not a duration; write it like 90s, 30m, 1h or 1h30m")
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
    return timedelta(seconds=seconds)


def _blank_is_none(value: Any) -> Any:
    # `VAR=` in an .env file or a compose file means "not set", not "set to nothing".
    return None if isinstance(value, str) and not value.strip() else value


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than zero")
    return value


def _not_negative(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError("must not be negative")
    return value


def _amqp_url_list(value: SecretStr) -> SecretStr:
    # The error names the entry by position only: the text may hold a password.
    parse_amqp_urls(value.get_secret_value())
    return value


def _http_url(value: str | None) -> str | None:
    # Checked at start so a typo stops the service instead of failing every request later.
    # The message never repeats the value: a URL may carry a token in its path or query.
    if value is None:
        return None
    if not _is_url(value, ("http", "https")):
        raise ValueError("expected an http:// or https:// URL with a host")
    return value


def _secret_http_url(value: SecretStr | None) -> SecretStr | None:
    if value is not None:
        _http_url(value.get_secret_value())
    return value


def _postgres_url(value: SecretStr) -> SecretStr:
    # asyncpg also takes several hosts (h1:5432,h2:5432) or none (a socket from ?host=); a
    # single host's port is checked here, the rest by asyncpg when it connects.
    text = value.get_secret_value()
    try:
        parts = urlsplit(text)
        if "," not in parts.netloc:
            _ = parts.port  # raises ValueError for a port that is not one
    except ValueError:
        raise ValueError("is not a valid postgresql:// URL") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError("expected a postgresql:// URL")
    return value


def _is_url(text: str, schemes: tuple[str, ...]) -> bool:
    try:
        parts = urlsplit(text)
        _ = parts.port  # raises ValueError for a port out of range
    except ValueError:
        return False
    return parts.scheme in schemes and bool(parts.hostname) and not any(c.isspace() for c in text)


def _cron_expression(value: str) -> str:
    # A schedule that cannot fire must stop the start, not be found out at midnight.
    if len(value.split()) != 5 or not croniter.is_valid(value):
        raise ValueError(f"{value!r} is not a cron expression (5 fields, UTC), e.g. '0 0 * * 1'")
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration), AfterValidator(_not_negative)]
PositiveDuration = Annotated[timedelta, BeforeValidator(parse_duration), AfterValidator(_positive)]
CronExpression = Annotated[str, AfterValidator(_cron_expression)]
AmqpUrls = Annotated[SecretStr, AfterValidator(_amqp_url_list)]
"""One AMQP URL, or several comma-separated (one per cluster node); a secret."""
OptionalText = Annotated[str | None, BeforeValidator(_blank_is_none)]
OptionalSecret = Annotated[SecretStr | None, BeforeValidator(_blank_is_none)]
OptionalPath = Annotated[Path | None, BeforeValidator(_blank_is_none)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
"""An http:// or https:// URL with a host; a bad one is refused without repeating it."""
OptionalHttpUrl = Annotated[OptionalText, AfterValidator(_http_url)]
OptionalSecretHttpUrl = Annotated[OptionalSecret, AfterValidator(_secret_http_url)]
"""An http(s) URL that is itself a secret (a webhook's path is its key)."""
DatabaseUrl = Annotated[SecretStr, AfterValidator(_postgres_url)]
"""A postgresql:// URL; a secret (its password may sit in the user info or in the query)."""


class SettingsError(RuntimeError):
    """The environment does not configure the service; the message names every variable."""


class BaseServiceSettings(BaseSettings):
    """What every service reads: where Postgres and RabbitMQ are, logging, outbox retention.

    The names on the broker belong to each service's settings, which build its topology.
    """

    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=False)

    # Given apart from their URLs (chassis.settings_sources): before the URLs they go into.
    database_password: OptionalSecret = None
    amqp_password: OptionalSecret = None
    database_url: DatabaseUrl = Field(
        default=SecretStr("postgresql://postgres@127.0.0.1:5432/test"), validate_default=True
    )
    amqp_url: AmqpUrls = Field(
        default=SecretStr("amqp://guest:guest@127.0.0.1:5672/"), validate_default=True
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "text"] = "auto"
    outbox_retention: Duration = timedelta(days=7)
    connect_timeout: Duration = Field(default=timedelta(seconds=10))

    @field_validator("database_url")
    @classmethod
    def _database_password_into_url(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        password = info.data.get("database_password")
        if password is None:
            return value
        return SecretStr(url_with_password(value.get_secret_value(), password.get_secret_value()))

    @field_validator("amqp_url")
    @classmethod
    def _amqp_password_into_urls(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        password = info.data.get("amqp_password")
        if password is None:
            return value
        return SecretStr(urls_with_password(value.get_secret_value(), password.get_secret_value()))

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments first, then ``X_FILE`` files, then the environment."""
        files = FileVariables(settings_cls)
        return init_settings, files, env_settings, dotenv_settings, file_secret_settings


class NamesSubscribers(Protocol):
    """Settings that name the exchange and the subscribed queues (a contract's names)."""

    @property
    def broker_names(self) -> Subscribers: ...


class TopologySettings:
    """A settings mixin: :attr:`topology` from the settings' ``broker_names``."""

    @property
    def topology(self: NamesSubscribers) -> Topology:
        """The whole system's topology under these names: every service declares all of it."""
        return Topology.of(self.broker_names)


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def load_settings(cls: type[SettingsT], **overrides: Any) -> SettingsT:
    """Return ``cls`` read from the environment (``overrides`` win).

    Raises ``SettingsError`` with one line per missing or invalid variable, by its env name.
    """
    try:
        return cls(**overrides)
    except SettingsFileError as exc:
        raise SettingsError(f"invalid configuration:\n  {exc}") from None
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False, include_input=False):
            name = str(err["loc"][0]).upper() if err["loc"] else "?"
            message = "is required but not set" if err["type"] == "missing" else err["msg"]
            lines.append(f"  {name}: {message}")
        raise SettingsError("invalid configuration:\n" + "\n".join(lines)) from None
