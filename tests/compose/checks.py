"""What the compose scenario asserts about runs: completed, stopped, crashed, after down and up
(see tests/compose/scenario.py)."""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any
from urllib.parse import quote

from tests.compose.checks_setup import SAMPLE_DAOS, SECRET_FILES
from tests.compose.stack import Stack, check, eventually, log

# Padded runs last about this long: long enough to break, well inside the worker's 30s grace
# (a run's time grows a little faster than its DAOs: 3,012 in 3.7s, 16,285 in 26s once).
RUN_SECONDS = 12


def sample_run(stack: Stack) -> None:
    job = stack.trigger()
    log(f"  run {job} accepted")
    outcome = finished(stack, job, timeout=180)
    check(
        outcome["outcome"] == "completed" and outcome["daosTotal"] == SAMPLE_DAOS,
        f"the sample run completed: {summary(outcome)}",
    )
    accounted(stack, outcome)
    one_email(stack, outcome)


def pad_registry(stack: Stack) -> None:
    """Adds DAOs (with no governance data: each fails at once, a per-DAO failure) until a run
    lasts about RUN_SECONDS, measured on a real run; the explicit `daos import`."""
    count = 3000
    import_daos(stack, 0, count)
    job = stack.trigger()
    outcome = finished(stack, job, timeout=300)
    seconds = max(outcome["durationMs"] / 1000, 0.5)
    accounted(stack, outcome)
    one_email(stack, outcome)
    wanted = int(count * RUN_SECONDS / seconds)
    log(f"  a run of {count + SAMPLE_DAOS} DAOs took {seconds:.1f}s; registry to {wanted}")
    if wanted > count:
        import_daos(stack, count, min(wanted, 60_000))


def import_daos(stack: Stack, start: int, end: int) -> None:
    rows = [
        {
            "id": f"pad-{n:05d}",
            "name": f"Padding {n}",
            "snapshot_space": f"pad{n}.eth",
            "active": True,
        }
        for n in range(start, end)
    ]
    out = stack.exec(
        "recalculator",
        "sh",
        "-c",
        "cat > /tmp/pad.json && recalculator daos import /tmp/pad.json",
        stdin=json.dumps(rows),
    )
    log(f"  {out.strip()}")


def running(stack: Stack) -> str:
    """Trigger a run and return its id once the ledger shows it under way."""
    job = stack.trigger()
    eventually(
        f"run {job} under way",
        lambda: (
            (j := stack.job(job))["outcome"] == "running"
            and j["daosProcessed"] + j["daosFailed"] > 0
        ),
        timeout=60,
        every=0.5,
    )
    log(f"  run {job} under way: {summary(stack.job(job))}")
    return job


def stop_during_run(stack: Stack) -> None:
    job = running(stack)
    started = time.monotonic()
    stack.compose("stop", timeout=300)
    took = time.monotonic() - started
    state = stack.inspect("recalculator")["State"]
    check(
        state["ExitCode"] == 0 and not state["OOMKilled"],
        f"the worker exited 0 after {took:.0f}s of docker-compose stop (not killed at its"
        f" grace); state {state['Status']}",
    )
    stack.compose("up", "-d")
    stack.wait_healthy()
    outcome = finished(stack, job, timeout=180)
    # Finished, or (a run longer than SHUTDOWN_GRACE) interrupted and recorded failed by the
    # worker itself before it drained: either way no abandoned alert.
    ending = "interrupted" if "interrupted" in (outcome["fatalError"] or "") else "finished"
    check(
        outcome["outcome"] in ("completed", "failed") and outcome["complete"],
        f"the run {ending} inside the worker's grace, every event recorded, not abandoned:"
        f" {summary(outcome)}",
    )
    accounted(stack, outcome)
    one_email(stack, outcome)


def crash_during_run(stack: Stack, service: str) -> None:
    """SIGKILL of the service's container (its init, so the whole container dies as in a
    crash or an OOM kill) during a run; the restart policy must bring it back."""
    job = running(stack)
    info = stack.inspect(service)
    before = info["RestartCount"]
    os.kill(info["State"]["Pid"], signal.SIGKILL)
    log(f"  {service} killed (pid {info['State']['Pid']})")
    eventually(
        f"{service} restarted by its restart policy",
        lambda: stack.inspect(service)["RestartCount"] > before,
        timeout=120,
    )
    stack.wait_healthy()
    outcome = finished(stack, job, timeout=300)
    if service == "recalculator":
        check(
            outcome["outcome"] == "abandoned",
            f"the run of the killed worker is reported abandoned: {summary(outcome)}",
        )
    else:
        check(
            outcome["outcome"] in ("completed", "failed") and outcome["complete"],
            f"the run finished with every event recorded: {summary(outcome)}",
        )
    accounted(stack, outcome)
    one_email(stack, outcome)


def down_and_up(stack: Stack) -> None:
    history = [j["id"] for j in stack.api("/api/admin/job-logs?limit=100")["data"]]
    stack.psql(
        "update recalc.daos set name = 'Aave (renamed in production)', active = false"
        " where id = 'aave'"
    )
    registry = stack.psql(
        "select count(*), md5(string_agg(id || name || active, ',' order by id)) from recalc.daos"
    )
    stack.compose("down", timeout=600)
    stack.compose("up", "-d")
    stack.wait_healthy()
    check(
        stack.psql(
            "select count(*), md5(string_agg(id || name || active, ',' order by id))"
            " from recalc.daos"
        )
        == registry,
        "the registry is as it was before down (setup did not re-import the sample)",
    )
    check(
        "nothing imported" in stack.compose("logs", "--no-color", "setup").stdout,
        "setup said it left the registry alone",
    )
    after = [j["id"] for j in stack.api("/api/admin/job-logs?limit=100")["data"]]
    check(after == history, f"the ledger's history kept in the volumes: {len(after)} runs")


def no_password_in_logs(stack: Stack) -> None:
    logs = stack.logs()
    forms = {
        name: (value, quote(value, safe=""))
        for name in SECRET_FILES
        if len(value := stack.secret(name)) > 4
    }
    leaked = [name for name, values in forms.items() if any(v in logs for v in values)]
    check(
        not leaked,
        f"no password, plain or percent-encoded, in {len(logs.splitlines())}"
        f" log lines of the stack: {leaked}",
    )


def finished(stack: Stack, job: str, *, timeout: float) -> dict[str, Any]:
    """The run once the ledger has its outcome and the notifier's email went out."""

    def done() -> dict[str, Any] | None:
        j = stack.job(job)
        sent = [n for n in j["notifications"] if n["channel"] == "email" and n["state"] == "sent"]
        return j if j["outcome"] != "running" and sent else None

    outcome: dict[str, Any] = eventually(
        f"run {job} finished with its email", done, timeout=timeout
    )
    return outcome


def accounted(stack: Stack, job: dict[str, Any]) -> None:
    """Nothing lost: the ledger's counts are the recalculator's own rows of the run."""
    row = stack.psql(
        f"select daos_total, daos_processed, daos_failed,"
        f" (select count(*) from recalc.gvs_scores where job_id = '{job['id']}'),"
        f" (select count(*) from recalc.dao_failures where job_id = '{job['id']}')"
        f" from recalc.jobs where id = '{job['id']}'"
    )
    total, processed, failed, scores, failures = (int(x) for x in row.split("|"))
    api = (job["daosTotal"], job["daosProcessed"], job["daosFailed"])
    check(
        api == (total, processed, failed) and (scores, failures) == (processed, failed),
        f"ledger {api} = recalculator (total, scored, failed) {(total, processed, failed)}"
        f" = its rows {(scores, failures)}",
    )
    if job["outcome"] != "abandoned" and not job["fatalError"]:
        check(processed + failed == total, "every DAO of the run was done")


def one_email(stack: Stack, job: dict[str, Any]) -> None:
    files = stack.emails(job["id"])
    emails = [n for n in job["notifications"] if n["channel"] == "email"]
    check(len(files) == 1 and len(emails) == 1, f"one email for outcome {job['outcome']}: {files}")


def summary(job: dict[str, Any]) -> str:
    return (
        f"{job['outcome']} {job['daosProcessed']}+{job['daosFailed']} failed"
        f" of {job['daosTotal']} in {(job.get('durationMs') or 0) / 1000:.1f}s"
        + (f", fatal: {job['fatalError'][:80]}" if job.get("fatalError") else "")
    )
