"""Where a setting may come from besides its variable: a file (``X_FILE``), and a password
given apart from its URL.

``X_FILE=/run/secrets/x`` gives setting ``X`` the content of that file (a Docker secret), one
trailing line break removed; an empty file is a blank value, so an optional setting stays unset.
Giving both ``X`` and ``X_FILE`` is refused. ``DATABASE_PASSWORD`` and ``AMQP_PASSWORD`` are
put into ``DATABASE_URL`` and each URL of ``AMQP_URL`` percent-encoded, so any password works in
a URL (``/``, ``@``, ``:``, ``%`` included) and none has to be encoded by hand.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

FILE_SUFFIX = "_FILE"


class SettingsFileError(RuntimeError):
    """An ``X_FILE`` variable that cannot be used; the message names it, never the content."""


class FileVariables(PydanticBaseSettingsSource):
    """Each setting ``X`` whose ``X_FILE`` variable is set, read from that file."""

    def __init__(self, settings_cls: type[BaseSettings], environ: dict[str, str] | None = None):
        super().__init__(settings_cls)
        self._environ = dict(os.environ) if environ is None else environ

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Return the file's content for ``field_name`` (``None`` when no ``X_FILE`` is set).

        Raises ``SettingsFileError`` when ``X`` is set too, or the file cannot be read.
        """
        name = field_name.upper()
        path = self._environ.get(name + FILE_SUFFIX, "").strip()
        if not path:
            return None, field_name, False
        if self._environ.get(name, "").strip():
            raise SettingsFileError(f"{name} and {name}{FILE_SUFFIX} are both set: give one")
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise SettingsFileError(f"{name}{FILE_SUFFIX}: cannot read {path}: {reason}") from None
        return text.removesuffix("\n").removesuffix("\r"), field_name, False

    def __call__(self) -> dict[str, Any]:
        """Return the settings given by files, by field name."""
        values: dict[str, Any] = {}
        for field_name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, field_name)
            if value is not None:
                values[key] = value
        return values


def url_with_password(url: str, password: str) -> str:
    """Return ``url`` with ``password`` percent-encoded into its user info.

    Raises ``ValueError`` (never quoting either) when ``url`` has no user name or already
    carries a password.
    """
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at or not userinfo:
        raise ValueError("needs a user name (scheme://user@host/…) to take the password")
    if ":" in userinfo:
        raise ValueError("already holds a password: give it in the URL or apart, not both")
    netloc = f"{userinfo}:{quote(password, safe='')}@{hostport}"
    return urlunsplit(parts._replace(netloc=netloc))


def urls_with_password(urls: str, password: str) -> str:
    """:func:`url_with_password` for each URL of a comma-separated list."""
    return ",".join(url_with_password(url.strip(), password) for url in urls.split(","))
