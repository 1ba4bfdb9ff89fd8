"""Who may ask: a Bearer token for the JSON API, a signed session cookie for the pages.

Credentials are compared in constant time (:class:`job_ledger.credentials.Credentials`), and
guessing is throttled per client (:class:`job_ledger.web.throttle.GuessThrottle`): a wrong
credential is counted and logged with the client's address and the route, never with what
was sent.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer
from starlette.types import ASGIApp, Receive, Scope, Send

from job_ledger.credentials import Credentials
from job_ledger.proxies import ClientOrigin
from job_ledger.web.errors import error_response
from job_ledger.web.throttle import GuessThrottle

log = logging.getLogger(__name__)

SESSION_COOKIE = "ledger_session"
FLASH_COOKIE = "ledger_flash"
SESSION_MAX_AGE_S = 12 * 3600
FLASH_MAX_AGE_S = 300


class BearerAuth:
    """ASGI middleware: refuse a request without a valid Bearer token (401, the error shape),
    and a client past its guessing budget (429 with ``Retry-After``) before looking at it.

    A request that sends no ``Authorization`` header guesses nothing and is not counted.
    """

    def __init__(
        self,
        app: ASGIApp,
        credentials: Credentials,
        throttle: GuessThrottle,
        origin: ClientOrigin,
    ) -> None:
        self.app = app
        self.credentials = credentials
        self.throttle = throttle
        self.origin = origin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = self.origin.address(scope)
        wait_s = self.throttle.refusal(client)
        if wait_s is not None:
            response = error_response(
                429, f"Too many failed attempts; try again in {wait_s}s", retry_after(wait_s)
            )
            await response(scope, receive, send)
            return
        header = _authorization(scope)
        holder = None if header is None else self._holder(header)
        if holder is None:
            if header is not None:
                failures = self.throttle.failed(client)
                log_failure("wrong API token", client, scope, failures, self.throttle)
            response = error_response(401, "Unauthorized", {"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        self.throttle.succeeded(client)
        await self.app(scope, receive, send)

    def _holder(self, header: bytes) -> str | None:
        scheme, _, token = header.partition(b" ")
        holder = self.credentials.bearer_holder(token.strip())
        return holder if scheme.lower() == b"bearer" else None


def _authorization(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return bytes(value)
    return None


def retry_after(wait_s: int) -> dict[str, str]:
    """The headers of a 429: how many seconds to wait."""
    return {"Retry-After": str(wait_s)}


def log_failure(
    what: str, client: str, scope: Scope, failures: int, throttle: GuessThrottle
) -> None:
    """Log a failed attempt with the client's address and the route (never the credential)."""
    window_min = throttle.client_window_s / 60
    log.warning(
        "%s from %s on %s %s (%d failed in %g min)",
        what,
        client,
        scope["method"],
        scope["path"],
        failures,
        window_min,
    )
    if failures == throttle.per_client:
        log.warning(
            "%s refused for up to %g min after %d failed attempts", client, window_min, failures
        )


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: ``sid`` is random per login and keys the CSRF token."""

    sid: str


class SessionKeys:
    """Signs and checks session and flash cookies and derives CSRF tokens, with one secret.

    Cookie ages are measured with the app's clock, so a test can expire a session by moving
    the clock instead of waiting twelve hours.
    """

    def __init__(self, secret: str, clock: Callable[[], datetime]) -> None:
        class ClockSigner(TimestampSigner):
            def get_timestamp(self) -> int:
                return int(clock().timestamp())

        self._csrf_key = hashlib.sha256(b"job-ledger csrf\x00" + secret.encode("utf-8")).digest()
        self._session = URLSafeTimedSerializer(
            secret, salt="job-ledger.admin-session", signer=ClockSigner
        )
        self._flash = URLSafeTimedSerializer(secret, salt="job-ledger.flash", signer=ClockSigner)

    def new_session(self) -> tuple[Session, str]:
        """Return a fresh session and its cookie value."""
        session = Session(sid=secrets.token_urlsafe(18))
        return session, self._session.dumps({"sid": session.sid})

    def session(self, cookie: str | None) -> Session | None:
        """Return the session of a cookie, None if it is missing, forged, garbled or expired."""
        if not cookie:
            return None
        try:
            data: Any = self._session.loads(cookie, max_age=SESSION_MAX_AGE_S)
        except BadSignature:  # SignatureExpired is a BadSignature too
            return None
        sid = data.get("sid") if isinstance(data, dict) else None
        return Session(sid=sid) if isinstance(sid, str) and sid else None

    def csrf_token(self, session: Session) -> str:
        """Return the CSRF token of ``session``: an HMAC of its id, so nothing is stored."""
        return hmac.new(self._csrf_key, session.sid.encode("utf-8"), hashlib.sha256).hexdigest()

    def csrf_valid(self, session: Session, token: str | None) -> bool:
        """True when ``token`` is the session's CSRF token (constant-time comparison)."""
        if not token:
            return False
        return hmac.compare_digest(token.encode("utf-8"), self.csrf_token(session).encode("utf-8"))

    def flash(self, message: str, level: str) -> str:
        """Return a cookie value carrying one message to the next page (post-redirect-get)."""
        return self._flash.dumps({"message": message, "level": level})

    def read_flash(self, cookie: str | None) -> tuple[str, str] | None:
        """Return ``(message, level)`` of a flash cookie, None if missing, forged or stale."""
        if not cookie:
            return None
        try:
            data: Any = self._flash.loads(cookie, max_age=FLASH_MAX_AGE_S)
        except BadSignature:
            return None
        if not isinstance(data, dict):
            return None
        message, level = data.get("message"), data.get("level")
        if isinstance(message, str) and level in ("ok", "error"):
            return message, level
        return None
