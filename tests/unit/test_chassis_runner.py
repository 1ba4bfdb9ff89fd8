"""The service runner: start-up errors as one line and exit 2, components started in order,
stopped in the reverse order on a stop or on the first crash, readiness served."""

from __future__ import annotations

import argparse
import asyncio
import socket
from typing import Any

import aiohttp
import pytest

from chassis.database import DatabaseUnavailable, create_pool, redact_dsn
from chassis.health import CannotServe
from chassis.runner import Component, OneLineParser, Serving, main, serve
from chassis.settings import BaseServiceSettings


class Settings(BaseServiceSettings):
    pass


@pytest.fixture(autouse=True)
def _keep_pytest_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    # main() configures the root logger; the test session's capture must stay in place.
    monkeypatch.setattr("chassis.runner.configure_logging", lambda *_: None)


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="svc")
    p.add_argument("--count", type=int, default=0)
    return p


def run_main(command: Any, *argv: str) -> int:
    return main("svc", parser(), Settings, command, list(argv))


@pytest.mark.parametrize(
    "dsn", ["not-a-url", "postgresql://x:hunter22@127.0.0.1:notaport/db", "postgresql://x:y@[::1"]
)
def test_a_malformed_database_url_is_one_line_without_the_password_and_exit_2(
    dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def command(args: argparse.Namespace, settings: Settings) -> int:
        await create_pool(dsn, "s", timeout_s=2)
        return 0

    assert run_main(command) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("svc: DATABASE_URL ")
    assert "is not usable" in err and "hunter22" not in err and "Traceback" not in err


def test_bad_settings_name_each_variable_on_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOG_LEVEL", "LOUD")
    monkeypatch.setenv("CONNECT_TIMEOUT", "soon")

    async def command(args: argparse.Namespace, settings: Settings) -> int:
        raise AssertionError("must not run")

    assert run_main(command) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("svc: invalid configuration: ")
    assert "LOG_LEVEL" in err and "CONNECT_TIMEOUT" in err


def test_a_usage_error_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    async def command(args: argparse.Namespace, settings: Settings) -> int:
        raise AssertionError("must not run")

    assert run_main(command, "--count", "many") == 2
    assert capsys.readouterr().err == "svc: error: argument --count: invalid int value: 'many'\n"


def test_the_commands_own_exit_code_is_returned() -> None:
    async def command(args: argparse.Namespace, settings: Settings) -> int:
        return int(args.count)

    assert run_main(command, "--count", "3") == 3


def test_an_unreachable_database_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    async def command(args: argparse.Namespace, settings: Settings) -> None:
        raise DatabaseUnavailable("cannot connect to Postgres at postgresql://h:1/db: refused")

    assert run_main(command) == 2
    assert capsys.readouterr().err == (
        "svc: cannot connect to Postgres at postgresql://h:1/db: refused\n"
    )


class Part:
    """A component that records what happened to it in a shared journal."""

    def __init__(self, name: str, journal: list[str], *, crash_after_s: float | None = None):
        self.name = name
        self.journal = journal
        self.crash_after_s = crash_after_s

    async def start(self) -> None:
        self.journal.append(f"start {self.name}")

    async def run(self) -> None:
        if self.crash_after_s is not None:
            await asyncio.sleep(self.crash_after_s)
            raise RuntimeError(f"{self.name} broke")
        await asyncio.Event().wait()

    async def stop(self, timeout_s: float) -> None:
        self.journal.append(f"stop {self.name} within {timeout_s:g}s")

    def component(self) -> Component:
        return Component(self.name, self.run, start=self.start, stop=self.stop, stop_timeout_s=2)


async def test_components_start_in_order_and_stop_in_reverse_order_on_a_stop() -> None:
    journal: list[str] = []
    stop = asyncio.Event()
    parts = [Part(n, journal) for n in ("relay", "dispatcher", "consumer")]

    def ready(_: Serving) -> None:
        journal.append("ready")
        stop.set()

    code = await serve(
        [p.component() for p in parts], checks={}, host="127.0.0.1", port=0, stop=stop,
        on_ready=ready,
    )  # fmt: skip
    assert code == 0
    assert journal == [
        "start relay",
        "start dispatcher",
        "start consumer",
        "ready",
        "stop consumer within 2s",
        "stop dispatcher within 2s",
        "stop relay within 2s",
    ]


async def test_the_first_crash_stops_every_component_and_exits_1(
    caplog: pytest.LogCaptureFixture,
) -> None:
    journal: list[str] = []
    parts = [Part("relay", journal), Part("dispatcher", journal, crash_after_s=0.05)]
    code = await serve(
        [p.component() for p in parts], checks={}, host="127.0.0.1", port=0, stop=asyncio.Event()
    )
    assert code == 1
    assert journal[-2:] == ["stop dispatcher within 2s", "stop relay within 2s"]
    assert "dispatcher stopped by itself: RuntimeError: dispatcher broke" in caplog.text


async def test_readiness_holds_the_services_checks_and_each_components() -> None:
    stop = asyncio.Event()
    seen: dict[str, Any] = {}

    async def database() -> str | None:
        return None

    async def consumer_problem() -> str | None:
        return "consumer not started"

    async def look(serving: Serving) -> None:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{serving.port}/readyz") as response,
        ):
            seen["status"], seen["body"] = response.status, await response.json()
        stop.set()

    tasks: list[asyncio.Task[None]] = []
    consumer = Component("consumer", asyncio.Event().wait, ready=consumer_problem)
    await serve(
        [consumer], checks={"database": database}, host="127.0.0.1", port=0, stop=stop,
        on_ready=lambda serving: tasks.append(asyncio.create_task(look(serving))),
    )  # fmt: skip
    await asyncio.gather(*tasks)
    assert (seen["status"], seen["body"]["checks"]) == (
        503,
        {"database": "ok", "consumer": "consumer not started"},
    )


async def test_a_taken_port_is_a_cannot_serve_error_naming_the_address() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(CannotServe, match=rf"^cannot serve HTTP on 127.0.0.1:{port}: "):
            await serve([], checks={}, host="127.0.0.1", port=port, stop=asyncio.Event())


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://x@127.0.0.1:1/db?password=hunter22-q&connect_timeout=1",
        "postgresql://x:hunter22-u@127.0.0.1:1/db?sslpassword=hunter22-s",
    ],
)
def test_a_database_password_in_the_query_or_the_user_info_never_reaches_stderr(
    dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def command(args: argparse.Namespace, settings: Settings) -> int:
        await create_pool(dsn, "s", timeout_s=2)
        return 0

    assert run_main(command) == 2
    err = capsys.readouterr().err
    assert err.startswith("svc: cannot connect to Postgres at ") and "***" in err
    assert "hunter22" not in err and err.count("\n") == 1
    assert "hunter22" not in redact_dsn(dsn) and "hunter22" not in redact_dsn(dsn, f"x {dsn} y")
