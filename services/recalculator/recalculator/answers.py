"""The answer to a run request: RunAccepted with the job it started, or RunRefused with why.

Each request is answered once. RunAccepted is written by ``JobStore.start_job`` in the
transaction that creates the job row (``jobs.request_id`` is unique); RunRefused is written
here with a ``refused_requests`` row (keyed by the request id) in one transaction. Both events'
ids derive from the request id, so even a second write of the same answer would be
deduplicated by every consumer. :meth:`RequestAnswers.answer_of` tells a redelivered request
that it was answered already.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Literal
from uuid import NAMESPACE_URL, UUID, uuid5

import asyncpg

from chassis.database import ACQUIRE_TIMEOUT_S
from chassis.outbox import enqueue
from contracts import (
    RunAccepted,
    RunAcceptedPayload,
    RunRefused,
    RunRefusedPayload,
    RunRequested,
    encode_event,
    routing_key,
)
from contracts.events import Trigger, truncate_error
from recalculator.requests import scope_of

log = logging.getLogger(__name__)

_ANSWER_NAMESPACE = uuid5(NAMESPACE_URL, "https://chainsights.one/jobs/run-request-answer")

Answer = Literal["accepted", "refused"]


def answer_event_id(request_id: UUID, answer: Answer) -> UUID:
    """The event id of ``request_id``'s answer: the same every time it is written. Pure."""
    return uuid5(_ANSWER_NAMESPACE, f"{request_id}/{answer}")


def accepted_event(
    *,
    job_id: UUID,
    job_name: str,
    request_id: UUID,
    trigger: Trigger,
    dao_ids: Sequence[str] | None,
) -> RunAccepted:
    """RunAccepted for the job ``job_id`` that ``request_id`` started. Pure."""
    return RunAccepted(
        event_id=answer_event_id(request_id, "accepted"),
        job_id=job_id,
        job_name=job_name,
        payload=RunAcceptedPayload(
            request_id=request_id,
            trigger=trigger,
            scope=scope_of(dao_ids),
            daos_requested=len(set(dao_ids)) if dao_ids is not None else None,
        ),
    )


def refusal_before_running(command: RunRequested, job_name: str) -> str | None:
    """Why ``command`` is refused before any database work, or None. Pure.

    The worker runs ``job_name`` only; an empty ``dao_ids`` asks for nothing (null, not an
    empty list, asks for every active DAO).
    """
    if command.job_name != job_name:
        return f"unknown job name {command.job_name}: this worker runs {job_name}"
    if command.dao_ids is not None and not command.dao_ids:
        return "no DAO ids given: a run of chosen DAOs needs at least one (null asks for all)"
    return None


class RequestAnswers:
    """Reads and writes the answers of run requests in ``pool``'s schema; ``exchange`` is
    where the relay publishes them, ``on_commit`` is called after a commit (to wake it)."""

    def __init__(self, pool: asyncpg.Pool, exchange: str, on_commit: Callable[[], None]) -> None:
        self._pool = pool
        self._exchange = exchange
        self._on_commit = on_commit

    async def answer_of(self, request_id: UUID) -> Answer | None:
        """How ``request_id`` was answered already, or None when it was not. Raises the
        database's error."""
        answer: Answer | None = await self._pool.fetchval(
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM jobs WHERE request_id = $1) THEN 'accepted'"
            " WHEN EXISTS (SELECT 1 FROM refused_requests WHERE request_id = $1) THEN 'refused'"
            " END",
            request_id,
        )
        return answer

    async def refuse(self, command: RunRequested, reason: str) -> bool:
        """Records the refusal of ``command`` and writes its RunRefused in one transaction.

        Returns False and writes nothing when the request was refused already: idempotent per
        request id. Raises the database's error (nothing is written then).
        """
        reason = truncate_error(reason)
        event = RunRefused(
            event_id=answer_event_id(command.request_id, "refused"),
            job_id=command.request_id,
            job_name=command.job_name,
            payload=RunRefusedPayload(
                request_id=command.request_id, trigger=command.trigger, reason=reason
            ),
        )
        async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            inserted = await conn.fetchval(
                "INSERT INTO refused_requests (request_id, job_name, trigger, reason)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT (request_id) DO NOTHING RETURNING true",
                command.request_id,
                command.job_name,
                command.trigger,
                reason,
            )
            if not inserted:
                return False
            await enqueue(conn, self._exchange, routing_key(event), encode_event(event))
        self._on_commit()
        log.warning("run request refused: %s", reason, extra={"request_id": command.request_id})
        return True
