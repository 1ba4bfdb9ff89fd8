"""`make compose-test`: the README's Docker quickstart on a real Docker engine, driven and broken.

    python -m tests.compose.scenario        # as root; COMPOSE_TEST_REF=<commit> (default HEAD)

A copy of the commit (``git archive``, never the working tree) runs under the compose project
``chainsights-compose-test``: ``cp .env.example .env`` (plus the test's settings: file email and
governance data, the ledger on 18080, a short watchdog), ``deploy/make-secrets.sh`` (then the
services' passwords replaced by ones holding ``/ @ : %``), ``docker-compose build`` and
``up -d``. Then: every service healthy; setup seeded the registry; what each container holds;
accounts, rights and the broker's queues; a run to completion through the ledger's API with its
email; ``docker-compose stop`` during a run; each service's process killed during a run; ``down``
and ``up`` again; ``down -v``, and nothing of the project left. The engine (tests/compose/engine.sh)
and the stand-in base images (base-images.sh, cached in /var/cache/chainsights-compose) are
started / built when missing; an engine this started is stopped at the end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from tests.compose import checks, checks_setup
from tests.compose.stack import DOCKER, ScenarioFailed, Stack, Timings, check, log, run

REPO = Path(__file__).resolve().parents[2]
PROJECT = "chainsights-compose-test"
LEDGER_PORT = 18080
TEST_SETTINGS = {
    "LEDGER_PUBLISHED_PORT": str(LEDGER_PORT),
    "EMAIL_TRANSPORT": "file",
    "EMAIL_OUTBOX_DIR": "/app/var/emails",
    "GOVERNANCE_SOURCE": "file",
    "GOVERNANCE_DATA": "/app/data/governance.sample.json",
    # A run silent this long is abandoned: the worker's crash is then seen within the test.
    "JOB_STALE_AFTER": "60s",
    "WATCHDOG_INTERVAL": "5s",
    "WATCHDOG_SETTLE": "10s",
}
AWKWARD = "/@:%"  # in every service password: the URLs must still work


def stage(ref: str) -> Stack:
    """The commit's files in a temporary directory, configured as the README says."""
    work = Path(tempfile.mkdtemp(prefix="chainsights-compose."))
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref], capture_output=True, check=True, timeout=120
    )
    subprocess.run(["tar", "-C", str(work), "-xf", "-"], input=archive.stdout, check=True)
    settings = (work / ".env.example").read_text().splitlines()
    for name, value in TEST_SETTINGS.items():
        settings = [line for line in settings if not line.startswith(f"{name}=")]
        settings.append(f"{name}={value}")
    (work / ".env").write_text("\n".join(settings) + "\n")
    run([str(work / "deploy" / "make-secrets.sh")], cwd=work)
    for service in ("recalculator", "job_ledger", "notifier"):
        for kind in ("db", "amqp"):
            path = work / "secrets" / f"{service}_{kind}_password"
            password = path.read_text().strip()
            path.write_text(password[:12] + AWKWARD + password[12:] + "\n")
    commit = run(["git", "-C", str(REPO), "rev-parse", "--short", ref]).stdout.strip()
    log(f"stack: {ref} ({commit}) in {work}, project {PROJECT}")
    return Stack(work, PROJECT, LEDGER_PORT)


def engine_and_base_images(work: Path) -> bool:
    """Start the engine if none answers; build the stand-ins if missing. True: ours to stop."""
    answer = run([str(work / "tests/compose/engine.sh"), "start"]).stdout.strip()
    log(answer)
    images = run([str(work / "tests/compose/base-images.sh")], timeout=1800).stdout
    for line in images.splitlines():
        log(f"  {line.split('] ', 1)[-1]}")
    return answer.startswith("engine: started")


def main() -> int:
    if os.geteuid() != 0:
        print("compose-test: run as root (dockerd, docker and the container kills)")
        return 2
    timings = Timings()
    stack = stage(os.environ.get("COMPOSE_TEST_REF", "HEAD"))
    ours = False
    code = 1
    try:
        with timings.step("engine and stand-in base images"):
            ours = engine_and_base_images(stack.work)
        scenario(stack, timings)
        code = 0
    except Exception as failure:  # every failure: the stack's state, then the teardown
        log(f"compose-test: FAIL: {failure!r}")
        traceback.print_exc()
        print(stack.compose("ps", "-a", check_exit=False).stdout)
        print("\n".join(stack.logs().splitlines()[-120:]))
    finally:
        with timings.step("down -v, app image removed"):
            code = teardown(stack) or code
        if ours:
            log(run([str(stack.work / "tests/compose/engine.sh"), "stop"]).stdout.strip())
        shutil.rmtree(stack.work, ignore_errors=True)
    print("timings:\n" + timings.table(), flush=True)
    log(f"compose-test: {'PASS' if code == 0 else 'FAIL'}")
    return code


def scenario(stack: Stack, timings: Timings) -> None:
    with timings.step("docker-compose build (the README's up --build)"):
        stack.compose("build", timeout=1500)
    with timings.step("docker-compose up -d"):
        stack.compose("up", "-d")
    with timings.step("every service healthy"):
        stack.wait_healthy()
    with timings.step("setup, containers, accounts, rights, queues"):
        checks_setup.first_start(stack)
    with timings.step("a run to completion, its email"):
        checks.sample_run(stack)
    with timings.step("runs long enough to break (registry padded)"):
        checks.pad_registry(stack)
    with timings.step("docker-compose stop during a run"):
        checks.stop_during_run(stack)
    for service in ("job-ledger", "notifier", "cron", "rabbitmq", "postgres", "recalculator"):
        with timings.step(f"{service} killed during a run"):
            checks.crash_during_run(stack, service)
    with timings.step("no password in any log (before down: these containers' logs)"):
        checks.no_password_in_logs(stack)
    with timings.step("down and up again"):
        checks.down_and_up(stack)
    with timings.step("no password in any log (the new containers)"):
        checks.no_password_in_logs(stack)


def teardown(stack: Stack) -> int:
    """``down -v``, the app image removed; 1 if anything of the project is left."""
    stack.compose("down", "-v", "--remove-orphans", timeout=600, check_exit=False)
    if os.environ.get("COMPOSE_TEST_KEEP_IMAGE") != "1":  # kept: the next build is quicker
        run([DOCKER, "image", "rm", "chainsights-jobs:latest"], check_exit=False)
        run([DOCKER, "image", "prune", "-f"], check_exit=False)
    label = f"label=com.docker.compose.project={PROJECT}"
    left = {
        kind: run(
            [DOCKER, kind, "ls", "-q", "--filter", label]
            if kind != "container"
            else [DOCKER, "ps", "-aq", "--filter", label]
        ).stdout.split()
        for kind in ("container", "network", "volume")
    }
    if os.environ.get("COMPOSE_TEST_KEEP_IMAGE") != "1":
        left["image"] = run([DOCKER, "images", "-q", "chainsights-jobs"]).stdout.split()
    log(
        "left behind: "
        + ", ".join(f"{len(ids)} {kind}s" for kind, ids in left.items())
        + f" of {PROJECT}; engine-wide: {len(run([DOCKER, 'ps', '-aq']).stdout.split())}"
        " containers, " + f"{len(run([DOCKER, 'volume', 'ls', '-q']).stdout.split())} volumes"
    )
    try:
        check(
            not any(left.values()),
            "nothing of the project is left (containers, networks, volumes, the app image)",
        )
    except ScenarioFailed as failure:
        log(f"compose-test: FAIL: {failure}: {left}")
        return 1
    return 0


if __name__ == "__main__":
    started = time.monotonic()
    exit_code = main()
    log(f"compose-test took {time.monotonic() - started:.0f}s")
    sys.exit(exit_code)
