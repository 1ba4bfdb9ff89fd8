"""Recording an outcome event: processed, remembered, and its delivery records, in ONE transaction.

:func:`record_outcome` reads the job's history (JobFinished only: the previous outcome and the
drop baseline, in one query), plans, and then writes in one statement, so one transaction and
one commit: the event id as processed (a redelivery then changes nothing), the outcome
remembered for later decisions (table ``outcomes``: finished, abandoned or missed), and one
pending record per planned notification. The records the dispatcher has room for are
inserted already claimed for their first attempt (lease set, ``attempts = 1``), so that after
the commit the dispatcher sends them at once, from memory: one durable commit before the
provider request, and two round trips (one for JobAbandoned and JobMissed). A crash after the
commit leaves them claimed; they are resumed once the lease runs out, with the same
idempotency key.
"""

from __future__ import annotations

from dataclasses import dataclass

from chassis.database import Connection
from contracts.events import JobFinished
from notifier.decisions import plan_notifications
from notifier.deliveries import Delivery
from notifier.dispatcher import Dispatcher
from notifier.history import Baseline, History, OutcomeEvent, PreviousOutcome, remembered


class Claim:
    """Room in the dispatcher that the consumer holds while it records an event.

    :meth:`take` reserves slots for records about to be claimed in the consumer's transaction;
    :meth:`hand_over` (after the commit) or :meth:`release` gives them back.
    """

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher
        self.slots = 0
        self.lease = dispatcher.policy.lease
        #: Channels whose records get their first attempt counted at once; the others are
        #: skipped (not configured), which is no attempt.
        self.sending = frozenset(dispatcher.transports)

    def take(self, count: int) -> int:
        """Reserve up to ``count`` slots; return how many (the rest stay for the resume)."""
        taken = self._dispatcher.reserve(count)
        self.slots += taken
        return taken

    def release(self) -> None:
        """Give back what was not handed over; idempotent."""
        slots, self.slots = self.slots, 0
        self._dispatcher.unreserve(slots)

    def hand_over(self, claimed: list[Delivery]) -> None:
        """Have the dispatcher send ``claimed`` (committed) now; frees the slots not used."""
        slots, self.slots = self.slots, 0
        self._dispatcher.hand_over(claimed, slots)


@dataclass(frozen=True, slots=True)
class Planning:
    """The settings the decisions depend on."""

    revalidation_configured: bool
    admin_base_url: str


@dataclass(frozen=True, slots=True)
class Recorded:
    """What :func:`record_outcome` committed: how many records, and those claimed to send now."""

    created: int
    claimed: list[Delivery]

    @property
    def unclaimed(self) -> int:
        """New records left for the dispatcher to claim itself (it had no room for them)."""
        return self.created - len(self.claimed)


# Both "before this event, other than this job", so a redelivery reads the same history.
# Ties on the time are broken by id, so that the same rows always give the same answer.
_HISTORY = """
SELECT p.status, p.occurred_at, b.daos_total, b.occurred_at AS baseline_at
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
    SELECT status, occurred_at FROM outcomes
    WHERE job_name = $1 AND job_id <> $2 AND occurred_at < $3
    ORDER BY occurred_at DESC, job_id DESC, event_type DESC LIMIT 1
) p ON true
LEFT JOIN LATERAL (
    SELECT daos_total, occurred_at FROM outcomes
    WHERE is_baseline AND job_name = $1 AND job_id <> $2 AND occurred_at < $3
    ORDER BY occurred_at DESC, job_id DESC LIMIT 1
) b ON true
"""

# The writes are ONE statement, so one implicit transaction and one commit, no BEGIN or COMMIT
# round trips. It marks the event processed, remembers the outcome, and inserts one record per
# planned notification, the claimed ones with a lease counted from this statement and their
# first attempt. Nothing is created for an event already processed, nor for a second event of
# the same type for a job (it could decide another kind and mail the admin twice): the
# outcomes row, keyed by (job_id, event_type), decides. Only the event that inserts it creates
# records, and a concurrent one for the same job waits on that row until the first commits,
# then creates nothing. Another event type for the same job (a JobFinished arriving after its
# job was called abandoned) is an outcome of its own, with its own records.
_RECORD_OUTCOME = """
WITH fresh AS (
    INSERT INTO processed_events (event_id, event_type, job_id) VALUES ($3, $4, $1)
    ON CONFLICT (event_id) DO NOTHING RETURNING true
), admitted AS (
    INSERT INTO outcomes (job_id, event_type, job_name, status, scope, daos_total, occurred_at,
                          is_baseline, event_id)
    SELECT $1, $4, $2, $11, $12, $13, $14, $15, $3 WHERE EXISTS (SELECT 1 FROM fresh)
    ON CONFLICT (job_id, event_type) DO NOTHING RETURNING true
)
INSERT INTO deliveries (job_id, channel, kind, job_name, event_id, event_type, alert,
                        attempts, claimed_until)
SELECT $1, r.channel, r.kind, $2, $3, $4, r.alert::jsonb, r.attempts,
       CASE WHEN r.claimed THEN clock_timestamp() + $5::interval END
FROM unnest($6::text[], $7::text[], $8::text[], $9::int[], $10::bool[])
     AS r(channel, kind, alert, attempts, claimed)
WHERE EXISTS (SELECT 1 FROM admitted)
  AND NOT EXISTS (SELECT 1 FROM deliveries WHERE job_id = $1 AND event_type = $4)
ON CONFLICT (job_id, channel, kind) DO NOTHING
RETURNING channel, kind
"""


async def read_history(conn: Connection, event: OutcomeEvent) -> History:
    """Return what the decisions about ``event`` look back on: empty but for a JobFinished.

    The same for a redelivered event (both lookups are "before it, other than its job").
    """
    if not isinstance(event, JobFinished):
        return History()
    # Read before the write, outside it: the same answer a transaction would give under
    # READ COMMITTED, and the outcome this event adds is not "previous" anyway.
    row = await conn.fetchrow(_HISTORY, event.job_name, event.job_id, event.occurred_at)
    previous = baseline = None
    if row is not None and row["status"] is not None:
        previous = PreviousOutcome(row["status"], row["occurred_at"])
    if row is not None and row["daos_total"] is not None:
        baseline = Baseline(row["daos_total"], row["baseline_at"])
    return History(previous, baseline)


async def record_outcome(
    conn: Connection, event: OutcomeEvent, planning: Planning, claim: Claim
) -> Recorded:
    """Record ``event`` and its delivery records in one statement (one commit) on ``conn``.

    Claims (through ``claim``) as many of the new records as the dispatcher has room for; the
    caller hands :attr:`Recorded.claimed` to the dispatcher after the commit. Idempotent: a
    redelivered event (same ``event_id``), or a second event of the same type for a job that
    already has records, creates nothing (``created == 0``). Raises asyncpg or OS errors; the
    caller then hands nothing over (if the commit did go through, the resume sends them).
    """
    history = await read_history(conn, event)
    plan = plan_notifications(
        event,
        history,
        revalidation_configured=planning.revalidation_configured,
        admin_base_url=planning.admin_base_url,
    )
    # The first records of the plan (the email first) get the free slots.
    claimed_count = claim.take(len(plan))
    first = [i < claimed_count for i in range(len(plan))]
    sending = claim.sending
    attempts = [int(c and n.channel in sending) for c, (n, _) in zip(first, plan, strict=True)]
    arguments = [
        event.job_id,
        event.job_name,
        event.event_id,
        event.event_type,
        claim.lease,
        [n.channel for n, _ in plan],
        [n.kind for n, _ in plan],
        [alert.model_dump_json() for _, alert in plan],
        attempts,
        first,
    ]
    outcome = remembered(event)
    kept = [outcome.status, outcome.scope, outcome.daos_total, outcome.occurred_at]
    rows = await conn.fetch(_RECORD_OUTCOME, *arguments, *kept, outcome.is_baseline)
    inserted = {(r["channel"], r["kind"]) for r in rows}
    claimed = [
        Delivery(
            job_id=event.job_id,
            channel=n.channel,
            kind=n.kind,
            job_name=event.job_name,
            alert=alert,
            attempts=tries,
            last_error=None,
            attempt_counted=bool(tries),
        )
        for (n, alert), was_claimed, tries in zip(plan, first, attempts, strict=True)
        if was_claimed and (n.channel, n.kind) in inserted
    ]
    return Recorded(len(inserted), claimed)
