"""Who may use the ledger's admin API and pages: the admin password and named API tokens.

``ADMIN_PASSWORD`` opens the pages and the API alike and must be at least
:data:`MIN_SECRET_LENGTH` characters. ``ADMIN_API_TOKENS`` gives scripts and other consumers
their own Bearer tokens, so the password need not be handed out: ``name:token`` entries,
comma-separated (``ci:3f9c…,grafana:a81d…``). Each token is at least as long as the password
must be; removing an entry (and restarting) revokes that token. Nothing here repeats a secret
in an error message.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass

from pydantic import SecretStr

MIN_SECRET_LENGTH = 16
"""The shortest password or token accepted: 16 characters."""

_TOKEN_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def long_enough(value: SecretStr | None) -> SecretStr | None:
    """``value`` unchanged; raises ``ValueError`` (without the value) when it is too short."""
    if value is not None and len(value.get_secret_value()) < MIN_SECRET_LENGTH:
        raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters long")
    return value


@dataclass(frozen=True)
class ApiToken:
    """One named Bearer token from ``ADMIN_API_TOKENS``; ``repr`` never shows the secret."""

    name: str
    secret: SecretStr


def parse_api_tokens(text: str) -> tuple[ApiToken, ...]:
    """Return the tokens of ``name:token,name:token``, in order.

    Raises ``ValueError`` for an empty entry, a bad or repeated name, a token shorter than
    :data:`MIN_SECRET_LENGTH` or one given twice; the message names the entry by position and
    name, never by its token.
    """
    entries = [entry.strip() for entry in text.split(",")]
    tokens: list[ApiToken] = []
    for position, entry in enumerate(entries, start=1):
        where = f"entry {position} of {len(entries)}"
        name, colon, secret = entry.partition(":")
        name, secret = name.strip(), secret.strip()
        if not colon or not _TOKEN_NAME.fullmatch(name):
            raise ValueError(f"{where} is not name:token (a name of letters, digits, _ . -)")
        if any(token.name == name for token in tokens):
            raise ValueError(f"{where} repeats the name {name!r}")
        if len(secret) < MIN_SECRET_LENGTH or any(c.isspace() for c in secret):
            raise ValueError(
                f"{where} ({name}): the token must be at least {MIN_SECRET_LENGTH} characters"
                " without blanks"
            )
        if any(token.secret.get_secret_value() == secret for token in tokens):
            raise ValueError(f"{where} ({name}): the same token is given twice")
        tokens.append(ApiToken(name, SecretStr(secret)))
    return tuple(tokens)


def api_tokens_valid(value: SecretStr | None) -> SecretStr | None:
    """``value`` unchanged once :func:`parse_api_tokens` accepts it (a pydantic validator)."""
    if value is not None:
        parse_api_tokens(value.get_secret_value())
    return value


class Credentials:
    """Checks a Bearer token or a typed password in constant time.

    Every candidate (the password, then each API token) is compared, always all of them, so
    neither the answer nor its timing says which one matched or how much of a guess was right.
    Header bytes of a non-ASCII secret arrive as UTF-8 from most clients but as Latin-1 from
    some (python-requests): both encodings are compared.
    """

    def __init__(self, password: str, tokens: tuple[ApiToken, ...] = ()) -> None:
        self._password = _encodings(password)
        self._tokens = [(t.name, _encodings(t.secret.get_secret_value())) for t in tokens]

    def password_matches(self, given: str | bytes) -> bool:
        """True when ``given`` is the admin password (what the login form accepts)."""
        return _matches(_bytes(given), self._password)

    def bearer_holder(self, given: str | bytes) -> str | None:
        """Who ``given`` belongs to: ``"admin"`` for the password, a token's name, or None."""
        given_bytes = _bytes(given)
        holder = "admin" if _matches(given_bytes, self._password) else None
        for name, encodings in self._tokens:
            if _matches(given_bytes, encodings) and holder is None:
                holder = name
        return holder


def _bytes(given: str | bytes) -> bytes:
    return given.encode("utf-8") if isinstance(given, str) else given


def _matches(given: bytes, encodings: tuple[bytes, bytes]) -> bool:
    matched = False
    for expected in encodings:
        matched |= hmac.compare_digest(given, expected)
    return matched


def _encodings(secret: str) -> tuple[bytes, bytes]:
    utf8 = secret.encode("utf-8")
    try:
        return utf8, secret.encode("latin-1")
    except UnicodeEncodeError:
        return utf8, utf8
