"""What each run a scenario started must look like, checked against the events a source holds
(the ledger's event store, or the exchange as the campaign's tap saw it).

A run is complete when its events are JobStarted (sequence 0) through JobFinished with no
gap and no sequence twice, name every DAO it was asked for exactly once, add up
(``daos_processed + daos_failed = daos_total``, each count matching its events) and end in
the status the scenario expects. A run the scenario expects abandoned has a JobAbandoned, no
JobFinished, no gap up to its last event and no DAO twice. Events this module does not know
(new types of the contract) are ignored; only the run's own are read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from contracts.events import Event

ExpectedStatus = Literal["completed", "failed", "abandoned"]
RUN_EVENTS = frozenset({"JobStarted", "DaoProcessed", "DaoFailed", "JobFinished", "JobAbandoned"})
OUTCOME_EVENTS = {"JobFinished": "finished", "JobAbandoned": "abandoned", "JobMissed": "missed"}


@dataclass
class ExpectedRun:
    """One run a scenario started: the DAOs it asked for and how it must end."""

    daos: frozenset[str]
    status: ExpectedStatus = "completed"


@dataclass(frozen=True)
class Seen:
    """One event as a source holds it."""

    event_id: str
    job_id: str
    event_type: str
    sequence: int | None
    payload: dict[str, Any]
    occurred_at: str

    @classmethod
    def of(cls, event: Event) -> Seen:
        data = event.model_dump(mode="json")
        return cls(
            data["event_id"],
            data["job_id"],
            data["event_type"],
            data["sequence"],
            data["payload"],
            data["occurred_at"],
        )


def runs_started(events: Iterable[Seen]) -> list[str]:
    """Job ids of the runs whose JobStarted a source holds, in the order they started."""
    started = [e for e in events if e.event_type == "JobStarted"]
    return [e.job_id for e in sorted(started, key=lambda e: e.occurred_at)]


def outcomes(events: Iterable[Seen]) -> set[tuple[str, str]]:
    """(job id, outcome) of every outcome event a source holds: what deserves one email."""
    return {
        (e.job_id, OUTCOME_EVENTS[e.event_type]) for e in events if e.event_type in OUTCOME_EVENTS
    }


def run_problems(source: str, events: list[Seen], expected: list[ExpectedRun]) -> list[str]:
    """What is wrong with the runs ``source`` holds against ``expected`` (in start order);
    an empty list when every run is as it must be."""
    jobs = runs_started(events)
    problems = []
    if len(jobs) != len(expected):
        problems.append(f"{source}: {len(jobs)} runs started, {len(expected)} expected")
    by_job: dict[str, list[Seen]] = {}
    for event in events:
        if event.event_type in RUN_EVENTS:
            by_job.setdefault(event.job_id, []).append(event)
    for index, (job, run) in enumerate(zip(jobs, expected, strict=False), 1):
        for problem in one_run_problems(by_job.get(job, []), run):
            problems.append(f"{source}: run {index} ({job[:8]}): {problem}")
    return problems


def one_run_problems(events: list[Seen], run: ExpectedRun) -> list[str]:
    """What is wrong with one run's events (every copy already removed)."""
    problems = []
    numbered = Counter(e.sequence for e in events if e.sequence is not None)
    twice = sorted(s for s, n in numbered.items() if n > 1)
    if twice:
        problems.append(f"sequences held by two events: {twice[:5]}")
    daos = Counter(
        str(e.payload.get("dao_id"))
        for e in events
        if e.event_type in ("DaoProcessed", "DaoFailed")
    )
    repeated = sorted(d for d, n in daos.items() if n > 1)
    if repeated:
        problems.append(f"{len(repeated)} DAOs reported twice (e.g. {repeated[0]})")
    if strangers := sorted(set(daos) - run.daos):
        problems.append(f"{len(strangers)} DAOs not asked for (e.g. {strangers[0]})")
    finished = [e for e in events if e.event_type == "JobFinished"]
    abandoned = [e for e in events if e.event_type == "JobAbandoned"]
    last = max(numbered, default=-1)
    if missing := sorted(set(range(last + 1)) - set(numbered)):
        problems.append(f"{len(missing)} sequences missing up to {last} (first {missing[0]})")
    if run.status == "abandoned":
        if finished or not abandoned:
            problems.append(
                f"expected abandoned, got {len(finished)} JobFinished, "
                f"{len(abandoned)} JobAbandoned"
            )
        return problems
    if len(finished) != 1:
        return [*problems, f"{len(finished)} JobFinished, expected 1"]
    end = finished[0]
    payload = end.payload
    if end.sequence != last:
        problems.append(f"JobFinished is sequence {end.sequence}, the last is {last}")
    if missing_daos := sorted(run.daos - set(daos)):
        problems.append(f"{len(missing_daos)} DAOs never reported (e.g. {missing_daos[0]})")
    counted = {"processed": 0, "failed": 0}
    for event in events:
        if event.event_type == "DaoProcessed":
            counted["processed"] += 1
        elif event.event_type == "DaoFailed":
            counted["failed"] += 1
    total, done, failed = (payload.get(k) for k in ("daos_total", "daos_processed", "daos_failed"))
    if not (isinstance(done, int) and isinstance(failed, int) and done + failed == total):
        problems.append(f"daos_processed {done} + daos_failed {failed} != daos_total {total}")
    if total != len(run.daos):
        problems.append(f"daos_total {total}, {len(run.daos)} DAOs asked for")
    if (done, failed) != (counted["processed"], counted["failed"]):
        problems.append(
            f"JobFinished says {done} processed, {failed} failed; events say "
            f"{counted['processed']}, {counted['failed']}"
        )
    if payload.get("status") != run.status:
        problems.append(f"ended {payload.get('status')}, expected {run.status}")
    return problems
