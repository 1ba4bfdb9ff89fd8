"""The alert truth table: each scenario, what happens in it, and exactly the alerts it must give.

Written once, as data. ``tests/e2e/test_alert_truth_table.py`` plays every scenario against the
real ``job-ledger serve`` and ``notifier serve`` and asserts the alerts (by channel and kind,
nothing more and nothing missing), the state the history shows and that every link in every
message opens a page; ``python -m tests.alerts`` renders the same table into ``docs/alerts.md``
(a unit test fails when the document is stale).

A scenario is a list of steps played in order; every step but the first starts once the alerts
of the steps before it have settled, as runs days apart would. Steps are labelled; an expected
alert names the step it is about.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

Channel = Literal["email", "slack"]
Shown = Literal["completed", "failed", "abandoned", "missed", "refused"]
Channels = Literal["configured", "unconfigured"]


@dataclass(frozen=True)
class Run:
    """A run as the recalculator reports it: JobStarted, one event per DAO, JobFinished.

    ``failed`` DAOs fail; a ``fatal`` error stops the run after JobStarted. ``started`` and
    ``finished`` are offsets from the moment the step is played (the run's events carry those
    times). ``copies`` publishes the same JobFinished (same event id) that many times.
    """

    label: str
    total: int
    failed: int = 0
    scope: Literal["all", "subset"] = "all"
    trigger: Literal["cron", "manual", "retry"] = "cron"
    fatal: str | None = None
    cache_invalidated: bool = True
    started: timedelta = timedelta(minutes=-2)
    finished: timedelta = timedelta(0)
    copies: int = 1

    @property
    def status(self) -> Literal["completed", "failed"]:
        """The recalculator's status rule: fatal, or more than half the DAOs failed."""
        return "failed" if self.fatal or self.failed * 2 > self.total else "completed"

    def describe(self) -> str:
        what = f"{self.total - self.failed} of {self.total} DAOs scored"
        if self.fatal:
            what = f"stopped by a fatal error after {self.total} DAOs were listed"
        scope = "every active DAO" if self.scope == "all" else f"chosen DAOs ({self.trigger})"
        extra = "" if self.cache_invalidated else ", cache not revalidated"
        copies = f", its JobFinished delivered {self.copies} times" if self.copies > 1 else ""
        return f"{self.label}: {scope}, {what}{extra}{copies}"


@dataclass(frozen=True)
class Died:
    """A run whose worker died: JobStarted and some DAOs, long enough ago to be stale."""

    label: str
    total: int
    processed: int
    silent_for: timedelta = timedelta(minutes=40)

    def describe(self) -> str:
        return (
            f"{self.label}: started, {self.processed} of {self.total} DAOs, then silent for "
            f"{int(self.silent_for.total_seconds() // 60)} min"
        )


@dataclass(frozen=True)
class SlotPassed:
    """The job's schedule had a slot two hours ago (grace 1 h); the watchdog judges it."""

    label: str

    def describe(self) -> str:
        return f"{self.label}: a scheduled slot passes its 1 h grace"


@dataclass(frozen=True)
class RequestRefused:
    """The admin presses "Start a new run"; the worker refuses the request with a reason."""

    label: str
    reason: str

    def describe(self) -> str:
        return f"{self.label}: the admin asks for a run; the worker refuses it ({self.reason})"


Step = Run | Died | SlotPassed | RequestRefused


@dataclass(frozen=True)
class Alert:
    """One message the scenario must produce: about ``step``, on ``channel``, of ``kind``."""

    step: str
    channel: Channel
    kind: str

    def __str__(self) -> str:
        return f"{self.step}: {self.channel} {self.kind}"


@dataclass(frozen=True)
class Scenario:
    """A situation, the alerts it must give (and no other), and what the history shows.

    ``before_ledger`` steps are published while the ledger is down (they wait in its queue);
    ``shown`` is the outcome the API and the pages show for each labelled step.
    """

    name: str
    why: str
    steps: tuple[Step, ...]
    alerts: tuple[Alert, ...]
    shown: dict[str, Shown]
    before_ledger: tuple[Step, ...] = ()
    channels: Channels = "configured"
    revalidation_configured: bool = True
    schedule_slot: bool = False
    notes: tuple[str, ...] = field(default=())

    @property
    def slug(self) -> str:
        return "-".join(self.name.lower().replace(",", "").replace("%", "pc").split())[:40]


def _email(step: str, kind: str) -> Alert:
    return Alert(step, "email", kind)


def _slack(step: str, kind: str) -> Alert:
    return Alert(step, "slack", kind)


_AGO_2H = timedelta(hours=-2)

SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "a clean week",
        "The rankings were updated: a green email, nothing on Slack.",
        (Run("week", 50),),
        (_email("week", "success"),),
        {"week": "completed"},
    ),
    Scenario(
        "a week with 10% failures",
        "Completed with a few failures: the green email lists them; 10% is below the 20% "
        "that asks for Slack's attention.",
        (Run("week", 50, failed=5),),
        (_email("week", "success"),),
        {"week": "completed"},
    ),
    Scenario(
        "a week with 30% failures",
        "Completed (the rankings did update) but more than 20% failed: green email, and Slack "
        "asks the admin to look.",
        (Run("week", 50, failed=15),),
        (_email("week", "success"), _slack("week", "warning")),
        {"week": "completed"},
    ),
    Scenario(
        "a week with 60% failures",
        "More than half failed: the run failed, red email and Slack.",
        (Run("week", 50, failed=30),),
        (_email("week", "failure"), _slack("week", "failure")),
        {"week": "failed"},
    ),
    Scenario(
        "a fatal error",
        "A fatal error stopped the run: red email and Slack, with the error.",
        (Run("week", 50, failed=0, fatal="the DAO registry could not be read"),),
        (_email("week", "failure"), _slack("week", "failure")),
        {"week": "failed"},
    ),
    Scenario(
        "an empty registry",
        "A run of the whole registry that found no active DAO updated nothing: a green email "
        "would lie, so it is a warning, on Slack too.",
        (Run("week", 0),),
        (_email("week", "warning"), _slack("week", "warning")),
        {"week": "completed"},
    ),
    Scenario(
        "a retry run",
        "A retry of the failed DAOs of a failed week completes: recovered, by email and Slack; "
        "its 30 DAOs are no drop from the week's 50 (it covers a subset).",
        (
            Run("week", 50, failed=30),
            Run("retry", 30, scope="subset", trigger="retry"),
        ),
        (
            _email("week", "failure"),
            _slack("week", "failure"),
            _email("retry", "recovered"),
            _slack("retry", "recovered"),
        ),
        {"week": "failed", "retry": "completed"},
    ),
    Scenario(
        "a subset run",
        "The admin runs 5 chosen DAOs after a clean week: green, no drop warning.",
        (Run("week", 50), Run("subset", 5, scope="subset", trigger="manual")),
        (_email("week", "success"), _email("subset", "success")),
        {"week": "completed", "subset": "completed"},
    ),
    Scenario(
        "a real DAO-count drop after a retry",
        "The drop check compares a whole-registry run with the last completed whole-registry "
        "run, never with a retry: 30 DAOs after a week of 50 is 40% fewer, a warning.",
        (
            Run("week", 50, failed=3),
            Run("retry", 3, scope="subset", trigger="retry"),
            Run("next week", 30),
        ),
        (
            _email("week", "success"),
            _email("retry", "success"),
            _email("next week", "warning"),
            _slack("next week", "warning"),
        ),
        {"week": "completed", "retry": "completed", "next week": "completed"},
    ),
    Scenario(
        "cache revalidation ok",
        "The site's cache was revalidated: green.",
        (Run("week", 50, cache_invalidated=True),),
        (_email("week", "success"),),
        {"week": "completed"},
    ),
    Scenario(
        "cache revalidation failed",
        "Revalidation is configured and failed: the site may show old scores, a warning by "
        "email and Slack.",
        (Run("week", 50, cache_invalidated=False),),
        (_email("week", "warning"), _slack("week", "warning")),
        {"week": "completed"},
    ),
    Scenario(
        "cache revalidation unconfigured",
        "No revalidation URL is set, so none was expected: green.",
        (Run("week", 50, cache_invalidated=False),),
        (_email("week", "success"),),
        {"week": "completed"},
        revalidation_configured=False,
    ),
    Scenario(
        "a run abandoned",
        "The worker died mid-run: once the run is silent past JOB_STALE_AFTER the watchdog "
        "marks it failed, red email and Slack.",
        (Died("run", 50, processed=20),),
        (_email("run", "abandoned"), _slack("run", "abandoned")),
        {"run": "abandoned"},
    ),
    Scenario(
        "a run completing while the ledger was down longer than the stale limit",
        "The run's events waited in the ledger's queue; the watchdog judges only what it has "
        "caught up on, so the run is completed, not abandoned.",
        (),
        (_email("week", "success"),),
        {"week": "completed"},
        before_ledger=(
            Run("week", 50, started=timedelta(minutes=-45), finished=timedelta(minutes=-1)),
        ),
    ),
    Scenario(
        "a slot missed",
        "No run started within the grace of a scheduled slot: red email and Slack, and the "
        "slot is a row of the history.",
        (SlotPassed("slot"),),
        (_email("slot", "missed"), _slack("slot", "missed")),
        {"slot": "missed"},
        schedule_slot=True,
    ),
    Scenario(
        "a slot whose run arrives late but within grace",
        "The run started 30 min after its slot (grace 1 h): the slot was met, green.",
        (SlotPassed("slot"),),
        (_email("week", "success"),),
        {"week": "completed"},
        before_ledger=(
            Run(
                "week",
                50,
                started=_AGO_2H + timedelta(minutes=30),
                finished=_AGO_2H + timedelta(minutes=40),
            ),
        ),
        schedule_slot=True,
    ),
    Scenario(
        "recovery after a failed run",
        "A completed run after a failed one: recovered, by email and Slack.",
        (Run("week", 50, failed=30), Run("next week", 50)),
        (
            _email("week", "failure"),
            _slack("week", "failure"),
            _email("next week", "recovered"),
            _slack("next week", "recovered"),
        ),
        {"week": "failed", "next week": "completed"},
    ),
    Scenario(
        "recovery after an abandoned run",
        "A completed run after one the watchdog abandoned: recovered.",
        (Died("run", 50, processed=20), Run("next run", 50, trigger="manual")),
        (
            _email("run", "abandoned"),
            _slack("run", "abandoned"),
            _email("next run", "recovered"),
            _slack("next run", "recovered"),
        ),
        {"run": "abandoned", "next run": "completed"},
    ),
    Scenario(
        "recovery after a missed slot",
        "A completed run after a missed slot: recovered.",
        (SlotPassed("slot"), Run("late run", 50, trigger="manual")),
        (
            _email("slot", "missed"),
            _slack("slot", "missed"),
            _email("late run", "recovered"),
            _slack("late run", "recovered"),
        ),
        {"slot": "missed", "late run": "completed"},
        schedule_slot=True,
    ),
    Scenario(
        "both channels unconfigured",
        "Without RESEND_API_KEY and SLACK_WEBHOOK_URL nothing is sent and nothing failed: each "
        "alert is shown skipped.",
        (Run("week", 50, failed=30),),
        (_email("week", "failure"), _slack("week", "failure")),
        {"week": "failed"},
        channels="unconfigured",
    ),
    Scenario(
        "the same JobFinished delivered four times",
        "At-least-once delivery: the notifier deduplicates by event id, one email.",
        (Run("week", 50, copies=4),),
        (_email("week", "success"),),
        {"week": "completed"},
    ),
    Scenario(
        "a refused run request",
        "The admin's request is answered, not lost: the page shows it refused with the "
        "reason. No alert: nothing ran.",
        (RequestRefused("request", "a run of the job is already going"),),
        (),
        {"request": "refused"},
    ),
)


def render_markdown() -> str:
    """``docs/alerts.md``: the table above, for people."""
    lines = [
        "# What the admin is told, and when",
        "",
        "Generated from `tests/alerts/scenarios.py` by `python -m tests.alerts` (`make "
        "alerts-doc`); `tests/e2e/test_alert_truth_table.py` plays every row against the real "
        "job-ledger and notifier and fails when any alert is missing or extra, when the "
        "history shows another state, or when a link in a message does not open a page. A "
        "unit test fails when this file is stale.",
        "",
        "Thresholds: a completed run with more than 20% of its DAOs failed gets a Slack "
        "warning; more than 50% failed (or a fatal error) is a failed run. A whole-registry run "
        "with more than 20% fewer DAOs than the last completed whole-registry run, a failed "
        "cache revalidation (when configured) or an empty registry is a warning. A completed "
        "run after a failed or abandoned run or a missed slot is a recovery.",
        "",
        "| scenario | what happens | alerts | the history shows | why |",
        "|---|---|---|---|---|",
    ]
    for scenario in SCENARIOS:
        happens = [s.describe() for s in scenario.before_ledger]
        if scenario.before_ledger:
            happens[-1] += " (while the ledger is down)"
        happens += [s.describe() for s in scenario.steps]
        if scenario.channels == "unconfigured":
            happens.append("no email or Slack configured")
        if not scenario.revalidation_configured:
            happens.append("no cache revalidation configured")
        alerts = "<br>".join(str(a) for a in scenario.alerts) or "none"
        shown = "<br>".join(f"{step}: {state}" for step, state in scenario.shown.items())
        cells = [scenario.name, "<br>".join(happens), alerts, shown, scenario.why]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)
