"""Who may ask: the Bearer token for the JSON API, a signed session cookie for the pages.

Both compare against ``ADMIN_PASSWORD`` in constant time (``hmac.compare_digest`` on bytes),
so the answer's timing says nothing about how much of a guess was right.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer
from starlette.types import ASGIApp, Receive, Scope, Send

from job_ledger.web.errors import error_response

SESSION_COOKIE = "ledger_session"
FLASH_COOKIE = "ledger_flash"
SESSION_MAX_AGE_S = 12 * 3600
FLASH_MAX_AGE_S = 300


def password_matches(given: str | bytes, password: str) -> bool:
    """True when ``given`` is the admin password; takes the same time whatever ``given`` is.

    Header bytes of a non-ASCII password arrive as UTF-8 from most clients but as Latin-1
    from some (python-requests): both encodings are compared, always both, so neither the
    answer nor its timing depends on which one matched.
    """
    given_bytes = given.encode("utf-8") if isinstance(given, str) else given
    matched = False
    for expected in _encodings(password):
        matched |= hmac.compare_digest(given_bytes, expected)
    return matched


def _encodings(password: str) -> list[bytes]:
    utf8 = password.encode("utf-8")
    try:
        latin1 = password.encode("latin-1")
    except UnicodeEncodeError:
        return [utf8, utf8]
    return [utf8, latin1]


class BearerAuth:
    """ASGI middleware: refuse (401, the error shape) a request without the Bearer token."""

    def __init__(self, app: ASGIApp, password: str) -> None:
        self.app = app
        self.password = password

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._authorized(scope):
            response = error_response(401, "Unauthorized", {"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = bytes(value).partition(b" ")
                return scheme.lower() == b"bearer" and password_matches(
                    token.strip(), self.password
                )
        return False


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


class LoginThrottle:
    """Slows down password guessing: after a few failures from one client, each attempt waits.

    The delay doubles with each failure past the third, up to ``max_delay_s``, and a success
    forgets the client. Only the most recent clients are remembered, so memory stays bounded.
    """

    def __init__(
        self, free_failures: int = 3, base_delay_s: float = 0.5, max_delay_s: float = 4.0
    ) -> None:
        self.free_failures = free_failures
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self._failures: OrderedDict[str, int] = OrderedDict()
        self._max_clients = 10_000

    def delay_for(self, client: str) -> float:
        """Return how long an attempt from ``client`` waits before it is answered."""
        excess = self._failures.get(client, 0) - self.free_failures
        if excess < 0:
            return 0.0
        return float(min(self.max_delay_s, self.base_delay_s * 2**excess))

    async def wait(self, client: str) -> None:
        delay = self.delay_for(client)
        if delay:
            await asyncio.sleep(delay)

    def failed(self, client: str) -> int:
        """Record a failure of ``client``; return how many it has in a row."""
        count = self._failures.pop(client, 0) + 1
        self._failures[client] = count
        while len(self._failures) > self._max_clients:
            self._failures.popitem(last=False)
        return count

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)
