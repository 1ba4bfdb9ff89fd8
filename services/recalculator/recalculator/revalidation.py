"""Cache revalidation: after a run, ask the website to refresh the pages that show scores.

A POST to ``CACHE_REVALIDATE_URL`` with ``Authorization: Bearer <CACHE_REVALIDATE_SECRET>``
and a JSON body naming the job and the DAOs rescored. A 2xx answer is ``cache_invalidated``.
Unset URL: nothing is sent and the run reports ``cache_invalidated: false`` without error; a
refused or unreachable endpoint is logged and also gives false. It never fails the run: stale
pages are a nuisance, not lost data.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

import aiohttp
from pydantic import SecretStr
from tenacity import AsyncRetrying, retry_if_result, stop_after_attempt, wait_fixed

log = logging.getLogger(__name__)

_ATTEMPTS = 2


class CacheRevalidator:
    """Posts revalidation requests with ``session`` (owned by the caller)."""

    def __init__(
        self,
        session: aiohttp.ClientSession | None,
        url: str | None,
        secret: SecretStr | None,
        *,
        timeout_s: float = 10.0,
        retry_delay_s: float = 1.0,
    ) -> None:
        self._session = session
        self._url = url
        self._secret = secret
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._retry_delay_s = retry_delay_s

    @property
    def configured(self) -> bool:
        return bool(self._url) and self._session is not None

    async def revalidate(self, job_id: UUID, dao_ids: Sequence[str]) -> bool:
        """Returns True when the endpoint answered 2xx, False when it is not configured, refused,
        or could not be reached (after one retry of a 5xx or a network error). Never raises for
        an HTTP failure. Idempotent on the endpoint's side (a refresh twice is a refresh)."""
        session, url = self._session, self._url
        if session is None or not url:
            log.info(
                "cache revalidation skipped: CACHE_REVALIDATE_URL is not set",
                extra={"job_id": job_id},
            )
            return False
        headers = {"Content-Type": "application/json"}
        if self._secret is not None:
            headers["Authorization"] = f"Bearer {self._secret.get_secret_value()}"
        body = {"job_id": str(job_id), "dao_ids": list(dao_ids)}
        retrying = AsyncRetrying(
            stop=stop_after_attempt(_ATTEMPTS),
            wait=wait_fixed(self._retry_delay_s),
            retry=retry_if_result(lambda answer: answer.retryable),
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        answer: _Answer = await retrying(_post, session, url, body, headers, self._timeout)
        if answer.ok:
            log.info("cache revalidated (%s)", answer.outcome, extra={"job_id": job_id})
            return True
        log.warning(
            "cache revalidation failed (attempt %d): %s",
            retrying.statistics.get("attempt_number", 1),
            answer.outcome,
            extra={"job_id": job_id},
        )
        return False


async def _post(
    session: aiohttp.ClientSession,
    url: str,
    body: object,
    headers: dict[str, str],
    client_timeout: aiohttp.ClientTimeout,
) -> _Answer:
    """One POST; what it answered, and whether another attempt may do better (a 5xx, a 429, a
    network error or a timeout)."""
    try:
        async with session.post(
            url, json=body, headers=headers, timeout=client_timeout
        ) as response:
            status = response.status
            text = (await response.text(errors="replace"))[:200]
    except (aiohttp.ClientError, TimeoutError) as exc:
        return _Answer(False, f"{type(exc).__name__}: {exc}", retryable=True)
    if 200 <= status < 300:
        return _Answer(True, f"HTTP {status}", retryable=False)
    return _Answer(False, f"HTTP {status}: {text}", retryable=status >= 500 or status == 429)


@dataclass(frozen=True)
class _Answer:
    ok: bool
    outcome: str
    retryable: bool
