"""The figures of one scenario, counted from the stack's own tables, the exchange (the
stack's tap) and the fake providers.

- published: recalculator outbox rows marked sent (each one confirmed by the broker);
- stored: ``job_events`` rows;
- rows right: ``job-ledger rebuild`` exits 0 (job_logs equals a replay of the event store)
  and every job the recalculator finished has the same status in ``job_logs``;
- runs right: every run the scenario started is complete and as expected, both in the
  ledger and on the exchange (:mod:`tests.chaos.runs`);
- emails: distinct emails in the fake inbox (a retry under the same key is one email);
- lost: events in any outbox (recalculator, notifier, ledger) or on the exchange missing from
  ``job_events``, plus outcomes (JobFinished, JobAbandoned, JobMissed) without their email,
  unless the scenario fails the provider on purpose;
- duplicated: stored events that no outbox holds, every email beyond one per (job, outcome)
  and every email for an outcome that never happened, and Slack messages beyond the sent
  Slack records of a job.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from tests.chaos.runs import Seen, outcomes, run_problems
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
    runs_right: bool = False
    emails: int = 0
    lost: int = 0
    duplicated: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return (
            self.rows_right
            and self.runs_right
            and self.lost == 0
            and self.duplicated == 0
            and not self.problems
        )

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

STUCK_AFTER_S = 20.0
"""How long "events not in the ledger" may stay the same, every outbox empty, before the
stack counts as settled with a loss: nothing is left anywhere that could still bring them."""


async def settle(stack: Stack, row: Row, timeout_s: float) -> None:
    """Wait until every outbox is empty, the ledger holds every published event and no
    delivery is pending. What did not settle is recorded in ``row`` (then counted by
    :func:`measure`) rather than raised, so a loss shows as figures, not as a traceback."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    for name, query in SETTLED.items():
        last, since = -2, loop.time()
        while (value := await stack.scalar(query)) != 0:
            if value != last:
                last, since = value, loop.time()
            stuck = query is LOST_EVENTS and loop.time() - since > STUCK_AFTER_S
            if stuck or loop.time() > deadline:
                row.problems.append(f"{name} did not settle: {value} left")
                return
            await asyncio.sleep(0.5)


async def ledger_events(stack: Stack) -> list[Seen]:
    """Every event of the stack's ``job_events``."""
    assert stack.pool is not None
    records = await stack.pool.fetch(
        "SELECT event_id::text, job_id::text, event_type, sequence, payload::text,"
        f' occurred_at FROM "{stack.names.ledger_schema}".job_events'
    )
    return [
        Seen(
            r["event_id"],
            r["job_id"],
            r["event_type"],
            r["sequence"],
            json.loads(r["payload"]),
            r["occurred_at"].isoformat(),
        )
        for r in records
    ]


async def measure(stack: Stack, row: Row, *, emails_expected: bool = True) -> Row:
    """Fill ``row``'s figures from ``stack`` (call once, once it has settled: it empties the
    stack's tap). Returns ``row``."""
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
    ledger = await ledger_events(stack)
    wire = [Seen.of(event) for event in await stack.tap.take_all()]
    held = {e.event_id for e in ledger}
    dropped = sum(e.event_id not in held for e in wire)
    row.check(dropped == 0, f"{dropped} events the exchange carried missing from job_events")
    wrong_runs = run_problems("ledger", ledger, stack.expected)
    wrong_runs += run_problems("exchange", wire, stack.expected)
    row.problems.extend(wrong_runs[:10])
    row.runs_right = not wrong_runs
    every_outcome = outcomes(ledger) | outcomes(wire)
    unmailed, extra_emails = email_figures(stack, every_outcome, row, emails_expected)
    row.lost = max(0, lost_events) + dropped + unmailed
    phantoms = await stack.scalar(PHANTOM_EVENTS)
    extra_slack = await extra_slack_messages(stack)
    row.duplicated = max(0, phantoms) + extra_emails + extra_slack
    row.check(phantoms == 0, f"{phantoms} stored events that no outbox holds")
    row.check(extra_slack == 0, f"{extra_slack} duplicate Slack messages")
    return row


def email_figures(
    stack: Stack, expected: set[tuple[str, str]], row: Row, required: bool
) -> tuple[int, int]:
    """(outcomes without an email when ``required``, emails beyond one per outcome or for no
    outcome), each named in ``row``'s problems."""
    inbox = stack.resend.inbox()
    row.emails = sum(inbox.values())
    unmailed = sorted(o for o in expected if inbox[o] == 0) if required else []
    row.check(
        not unmailed,
        f"{len(unmailed)} outcomes without its email (e.g. {unmailed[:1]})",
    )
    extra = {o: n - 1 for o, n in inbox.items() if o in expected and n > 1}
    strays = {o: n for o, n in inbox.items() if o not in expected}
    row.check(not extra, f"{sum(extra.values())} duplicate emails: {sorted(extra.items())[:3]}")
    row.check(not strays, f"{sum(strays.values())} emails for no outcome: {sorted(strays)[:3]}")
    return len(unmailed), sum(extra.values()) + sum(strays.values())


async def extra_slack_messages(stack: Stack) -> int:
    """Slack messages accepted beyond each job's sent Slack records."""
    assert stack.pool is not None
    extra = 0
    for record in await stack.pool.fetch(
        "SELECT job_id::text, count(*) FILTER (WHERE state = 'sent') AS sent"
        f" FROM \"{stack.names.notifier_schema}\".deliveries WHERE channel = 'slack'"
        " GROUP BY job_id"
    ):
        extra += max(0, stack.slack.accepted_for(record["job_id"]) - int(record["sent"]))
    return extra


def table(rows: list[Row]) -> str:
    """The campaign's table, as Markdown (readable on a terminal too)."""
    head = (
        "| scenario | events published | events stored | rows right | runs right | emails sent "
        "| lost | duplicated | verdict | time | notes |"
    )
    lines = [head, "|---|---:|---:|---|---|---:|---:|---:|---|---:|---|"]
    for r in rows:
        notes = "; ".join(r.notes + r.problems).replace("|", "/")
        lines.append(
            f"| {r.scenario} | {r.published} | {r.stored} | {'yes' if r.rows_right else 'NO'} "
            f"| {'yes' if r.runs_right else 'NO'} | {r.emails} | {r.lost} | {r.duplicated} "
            f"| {r.verdict} | {r.seconds:.0f}s | {notes} |"
        )
    return "\n".join(lines)
