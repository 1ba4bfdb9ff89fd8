"""The compose stack under test: docker-compose, docker and the ledger's API, as the scenario
drives them, each step logged with its duration."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DOCKER = "/usr/bin/docker"
COMPOSE = "docker-compose"
ONE_SHOTS = ("broker-users", "setup")
LONG_RUNNING = ("postgres", "rabbitmq", "recalculator", "cron", "job-ledger", "notifier")


class ScenarioFailed(AssertionError):
    """A check of the scenario did not hold; the message says which and what was seen."""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def check(condition: bool, message: str) -> None:
    """Raise ``ScenarioFailed(message)`` unless ``condition``; log it as passed otherwise."""
    if not condition:
        raise ScenarioFailed(message)
    log(f"  ok: {message}")


def run(
    command: list[str],
    *,
    cwd: Path | None = None,
    stdin: str | None = None,
    timeout: float = 900,
    check_exit: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``command``; raise ``ScenarioFailed`` with its output's tail when it fails."""
    result = subprocess.run(
        command,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check_exit and result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-15:]
        raise ScenarioFailed(
            f"{' '.join(command[:4])} … exited {result.returncode}:\n" + "\n".join(tail)
        )
    return result


def eventually(what: str, probe: Callable[[], Any], *, timeout: float, every: float = 2) -> Any:
    """Return ``probe()``'s first truthy answer within ``timeout`` seconds; raise otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except (ScenarioFailed, OSError, ValueError, KeyError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(every)
    raise ScenarioFailed(f"{what}: not within {timeout:.0f}s (last seen: {last!r})")


@dataclass
class Timings:
    """How long each timed step took, printed as a table at the end."""

    steps: list[tuple[str, float]] = field(default_factory=list)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        log(f"step: {name}")
        started = time.monotonic()
        try:
            yield
        finally:
            took = time.monotonic() - started
            self.steps.append((name, took))
            log(f"timing: {name}: {took:.0f}s")

    def table(self) -> str:
        width = max(len(name) for name, _ in self.steps)
        rows = [f"  {name:<{width}}  {took:6.0f}s" for name, took in self.steps]
        total = sum(took for _, took in self.steps)
        return "\n".join([*rows, f"  {'total':<{width}}  {total:6.0f}s"])


@dataclass
class Stack:
    """One compose project in ``work`` (a copy of a commit), its ledger on ``ledger_port``."""

    work: Path
    project: str
    ledger_port: int

    def compose(
        self, *args: str, stdin: str | None = None, timeout: float = 900, check_exit: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return run(
            [COMPOSE, "-p", self.project, *args],
            cwd=self.work,
            stdin=stdin,
            timeout=timeout,
            check_exit=check_exit,
        )

    def exec(self, service: str, *command: str, stdin: str | None = None) -> str:
        """``docker-compose exec -T service command``; its stdout."""
        return self.compose("exec", "-T", service, *command, stdin=stdin, timeout=300).stdout

    def psql(self, sql: str) -> str:
        """``sql`` as the Postgres superuser (the test's own look at the databases)."""
        return self.exec(
            "postgres",
            "psql",
            "-U",
            "postgres",
            "-d",
            "chainsights",
            "-v",
            "ON_ERROR_STOP=1",
            "-Atc",
            sql,
        ).strip()

    def container(self, service: str) -> str:
        ids = self.compose("ps", "-a", "-q", service).stdout.split()
        if not ids:
            raise ScenarioFailed(f"no container for {service}")
        return ids[0]

    def inspect(self, service: str) -> dict[str, Any]:
        out = run([DOCKER, "inspect", self.container(service)]).stdout
        return dict(json.loads(out)[0])

    def secret(self, name: str) -> str:
        return (self.work / "secrets" / name).read_text().removesuffix("\n")

    def api(self, path: str) -> Any:
        """GET the ledger's API through its published port, with the Bearer token."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.ledger_port}{path}",
            headers={"Authorization": f"Bearer {self.secret('admin_password')}"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            return json.loads(answer.read())

    def job(self, job_id: str) -> dict[str, Any]:
        data = self.api(f"/api/admin/job-logs?id={job_id}")["data"]
        return dict(data[0] if isinstance(data, list) else data)

    def health(self) -> dict[str, str]:
        """Every container's state: health for the long-running, exit code for the one-shots."""
        states = {}
        for service in (*ONE_SHOTS, *LONG_RUNNING):
            try:
                state = self.inspect(service)["State"]
            except ScenarioFailed:
                states[service] = "missing"
                continue
            if service in ONE_SHOTS:
                states[service] = (
                    f"exited {state['ExitCode']}"
                    if state["Status"] == "exited"
                    else state["Status"]
                )
            else:
                states[service] = (state.get("Health") or {}).get("Status", state["Status"])
        return states

    def wait_healthy(self, timeout: float = 420) -> None:
        def all_healthy() -> bool:
            states = self.health()
            return all(states[s] == "exited 0" for s in ONE_SHOTS) and all(
                states[s] == "healthy" for s in LONG_RUNNING
            )

        eventually(
            "every service healthy, setup and broker-users done",
            all_healthy,
            timeout=timeout,
            every=3,
        )

    def trigger(self) -> str:
        """A manual run through the worker's container; returns the accepted job's id."""
        answer = self.exec("recalculator", "recalculator", "trigger", "--wait", "60").strip()
        if "accepted: job " not in answer:
            raise ScenarioFailed(f"trigger answered {answer!r}")
        return answer.split("accepted: job ")[1].split()[0]

    def emails(self, job_id: str) -> list[str]:
        """The email files the notifier wrote for ``job_id`` (one .json per email)."""
        listing = self.exec("notifier", "ls", "/app/var/emails").split()
        return sorted(
            name for name in listing if name.startswith(job_id) and name.endswith(".json")
        )

    def logs(self) -> str:
        return self.compose("logs", "--no-color", timeout=300, check_exit=False).stdout
