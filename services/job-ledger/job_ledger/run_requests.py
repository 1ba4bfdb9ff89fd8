"""``run_requests``: what became of each RunRequested, from the recalculator's answers.

A request the ledger publishes itself (its buttons, its API) is recorded ``pending`` in the
transaction that publishes it; RunAccepted makes it ``accepted`` with the job it started,
RunRefused ``refused`` with the reason. An answer to a request the ledger never saw (the CLI,
cron) creates the row. Answers fold the same in any order and any number of times: the
worker answers each request once, but should two different answers ever arrive, an accepted
one wins over a refusal (a run exists), and between two of the same kind the earliest
``(occurred_at, event_id)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from chassis.database import Connection
from contracts import RunRequested
from contracts.events import Envelope, RunAccepted, RunRefused

Answer = RunAccepted | RunRefused


@dataclass(frozen=True, slots=True)
class RunRequest:
    """One ``run_requests`` row. ``requested_at`` is None when only the answer was seen;
    ``dao_count`` None means every active DAO (or not known)."""

    request_id: UUID
    job_name: str
    trigger: str
    dao_count: int | None
    requested_at: datetime | None
    state: str
    job_id: UUID | None
    reason: str | None
    answered_at: datetime | None


# The ledger's own record and an answer may come in either order: whichever is second fills
# what the first did not know and never moves the state back to pending.
_RECORD_PENDING = """
INSERT INTO run_requests AS r (request_id, job_name, trigger, dao_count, requested_at, state)
VALUES ($1, $2, $3, $4, $5, 'pending')
ON CONFLICT (request_id) DO UPDATE SET
    requested_at = COALESCE(r.requested_at, EXCLUDED.requested_at),
    dao_count = COALESCE(r.dao_count, EXCLUDED.dao_count)
"""

_RECORD_ANSWER = """
INSERT INTO run_requests AS r (request_id, job_name, trigger, dao_count, state, job_id, reason,
                               answered_at, answer_event_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (request_id) DO UPDATE SET
    state = EXCLUDED.state, job_id = EXCLUDED.job_id, reason = EXCLUDED.reason,
    answered_at = EXCLUDED.answered_at, answer_event_id = EXCLUDED.answer_event_id,
    dao_count = COALESCE(r.dao_count, EXCLUDED.dao_count)
WHERE r.state = 'pending'
   OR (r.state = 'refused' AND EXCLUDED.state = 'accepted')
   OR (r.state = EXCLUDED.state
       AND (EXCLUDED.answered_at, EXCLUDED.answer_event_id) < (r.answered_at, r.answer_event_id))
"""

_SELECT = """
SELECT request_id, job_name, trigger, dao_count, requested_at, state, job_id, reason, answered_at
FROM run_requests WHERE request_id = $1
"""


async def record_requested(conn: Connection, command: RunRequested) -> None:
    """Record ``command`` as a pending request (or complete the row its answer made).

    Idempotent; never changes an answered request's state.
    """
    await conn.execute(
        _RECORD_PENDING,
        command.request_id,
        command.job_name,
        command.trigger,
        None if command.dao_ids is None else len(command.dao_ids),
        command.requested_at,
    )


def _answer_args(answer: Answer) -> tuple[Any, ...]:
    if isinstance(answer, RunAccepted):
        state, job_id, reason = "accepted", answer.job_id, None
        dao_count = answer.payload.daos_requested
    else:
        state, job_id, reason, dao_count = "refused", None, answer.payload.reason, None
    return (
        answer.payload.request_id,
        answer.job_name,
        answer.payload.trigger,
        dao_count,
        state,
        job_id,
        reason,
        answer.occurred_at,
        answer.event_id,
    )


async def record_run_answers(conn: Connection, events: Iterable[Envelope]) -> int:
    """Fold the RunAccepted / RunRefused among ``events`` into ``run_requests``.

    Returns how many answers there were. Idempotent and order-independent (see the module);
    rows are written in request id order so two ledger processes do not deadlock.
    """
    answers = sorted(
        (e for e in events if isinstance(e, RunAccepted | RunRefused)),
        key=lambda a: (a.payload.request_id, a.occurred_at, a.event_id),
    )
    if answers:
        await conn.executemany(_RECORD_ANSWER, [_answer_args(a) for a in answers])
    return len(answers)


async def run_request(conn: Connection, request_id: UUID) -> RunRequest | None:
    """Return the request ``request_id``, or None when the ledger knows nothing of it."""
    row = await conn.fetchrow(_SELECT, request_id)
    return None if row is None else RunRequest(*row)
