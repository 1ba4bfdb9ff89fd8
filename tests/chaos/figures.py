"""The figures of one scenario, counted from the stack's own tables and the fake providers.

- published: recalculator outbox rows marked sent (each one confirmed by the broker);
- stored: ``job_events`` rows;
- rows right: ``job-ledger rebuild`` exits 0 (job_logs equals a replay of the event store)
  and every job the recalculator finished has the same status in ``job_logs``;
- emails: emails the fake Resend accepted (a retry under the same key is not a new one);
- lost: events in any outbox (recalculator, notifier, ledger) missing from ``job_events``,
  plus outcomes (JobFinished, JobAbandoned, JobMissed) without an accepted email, unless the
  scenario fails the provider on purpose;
- duplicated: stored events that no outbox holds, extra emails per (job, kind), and Slack
  messages beyond the sent Slack records of a job.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from tests.chaos.stack import Stack

LOST_EVENTS = (
    "SELECT count(*) FROM (SELECT message_id FROM {recalc}.outbox"
    " UNION SELECT message_id FROM {notifier}.outbox"
    " UNION SELECT message_id FROM {ledger}.outbox) o"
    " WHERE NOT EXISTS (SELECT 1 FROM {ledger}.job_events e WHERE e.event_id::text = o.message_id)"
)
PHANTOM_EVENTS = (
    "SELECT count(*) FROM {ledger}.job_events e WHERE e.event_id::text NOT IN"
    " (SELECT message_id FROM {recalc}.outbox UNION SELECT message_id FROM {notifier}.outbox"
    " UNION SELECT message_id FROM {ledger}.outbox)"
)
OUTCOMES = (
    "SELECT count(DISTINCT (job_id, event_type)) FROM {ledger}.job_events"
    " WHERE event_type IN ('JobFinished', 'JobAbandoned', 'JobMissed')"
)
STATUS_MISMATCH = (
    "SELECT count(*) FROM {recalc}.jobs r LEFT JOIN {ledger}.job_logs l ON l.id = r.id"
    " WHERE r.status <> 'running' AND l.status::text IS DISTINCT FROM r.status"
)


@dataclass
class Row:
    """One line of the table."""

    scenario: str
    published: int = 0
    stored: int = 0
    rows_right: bool = False
    emails: int = 0
    lost: int = 0
    duplicated: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.rows_right and self.lost == 0 and self.duplicated == 0 and not self.problems

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "FAIL"

    def check(self, ok: bool, problem: str) -> bool:
        """Record ``problem`` unless ``ok``; returns ``ok``."""
        if not ok:
            self.problems.append(problem)
        return ok


SETTLED = {
    "recalc outbox": "SELECT count(*) FROM {recalc}.outbox WHERE sent_at IS NULL",
    "ledger outbox": "SELECT count(*) FROM {ledger}.outbox WHERE sent_at IS NULL",
    "notifier outbox": "SELECT count(*) FROM {notifier}.outbox WHERE sent_at IS NULL",
    "pending deliveries": "SELECT count(*) FROM {notifier}.deliveries WHERE state = 'pending'",
    "events not in the ledger": LOST_EVENTS,
}
"""What must be zero once a stack has settled."""


async def settle(stack: Stack, row: Row, timeout_s: float) -> None:
    """Wait until every outbox is empty, the ledger holds every published event and no
    delivery is pending. What did not settle is recorded in ``row`` (then counted by
    :func:`measure`) rather than raised, so a loss shows as figures, not as a traceback."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    for name, query in SETTLED.items():
        try:
            await stack.wait_for(query, 0, max(1.0, deadline - loop.time()))
        except AssertionError as exc:
            row.problems.append(f"{name} did not settle: {str(exc)[:200]}")
            return


async def measure(stack: Stack, row: Row, *, emails_expected: bool = True) -> Row:
    """Fill ``row``'s figures from ``stack`` (call once it has settled). Returns ``row``."""
    row.published = await stack.scalar(
        "SELECT count(*) FROM {recalc}.outbox WHERE sent_at IS NOT NULL"
    )
    row.stored = await stack.stored()
    lost_events = await stack.scalar(LOST_EVENTS)
    row.check(lost_events == 0, f"{lost_events} published events missing from job_events")
    code, out, err = await stack.cli("ledger", "rebuild")
    rebuilt = code == 0
    row.check(rebuilt, f"rebuild exit {code}: {(out + err).strip()[:300]}")
    mismatched = await stack.scalar(STATUS_MISMATCH)
    row.check(mismatched == 0, f"{mismatched} jobs with another status in job_logs")
    row.rows_right = rebuilt and mismatched == 0
    row.emails = stack.resend.emails_sent()
    outcomes = await stack.scalar(OUTCOMES)
    unmailed = max(0, outcomes - row.emails) if emails_expected else 0
    row.check(unmailed == 0, f"{outcomes} outcomes but {row.emails} emails")
    row.lost = max(0, lost_events) + unmailed
    phantoms = await stack.scalar(PHANTOM_EVENTS)
    extra_emails = stack.resend.duplicate_emails()
    extra_slack = 0
    assert stack.pool is not None
    for record in await stack.pool.fetch(
        f"SELECT job_id::text, count(*) FILTER (WHERE state = 'sent') AS sent"
        f" FROM \"{stack.names.notifier_schema}\".deliveries WHERE channel = 'slack'"
        " GROUP BY job_id"
    ):
        extra_slack += max(0, stack.slack.accepted_for(record["job_id"]) - int(record["sent"]))
    row.duplicated = max(0, phantoms) + extra_emails + extra_slack
    row.check(phantoms == 0, f"{phantoms} stored events that no outbox holds")
    row.check(extra_emails == 0, f"{extra_emails} duplicate emails")
    row.check(extra_slack == 0, f"{extra_slack} duplicate Slack messages")
    return row


def table(rows: list[Row]) -> str:
    """The campaign's table, as Markdown (readable on a terminal too)."""
    head = (
        "| scenario | events published | events stored | rows right | emails sent | lost "
        "| duplicated | verdict | time | notes |"
    )
    lines = [head, "|---|---:|---:|---|---:|---:|---:|---|---:|---|"]
    for r in rows:
        notes = "; ".join(r.notes + r.problems).replace("|", "/")
        lines.append(
            f"| {r.scenario} | {r.published} | {r.stored} | {'yes' if r.rows_right else 'NO'} "
            f"| {r.emails} | {r.lost} | {r.duplicated} | {r.verdict} | {r.seconds:.0f}s "
            f"| {notes} |"
        )
    return "\n".join(lines)
