"""``notifier serve`` that cannot start says why in ONE stderr line and exits 2: a malformed
``DATABASE_URL`` (never echoing its password) and a taken health port, in a subprocess."""

from __future__ import annotations

import os
import socket
import sys

import pytest

from tests.harness.processes import run_command
from tests.harness.stack import Stack


def serve_env(stack: Stack, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"RESEND_API_KEY", "SLACK_WEBHOOK_URL"}}
    env.update(stack.env(notifier_schema=stack.schema, connect_timeout="3s", **values))
    return env


def notifier_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("notifier: ")]


@pytest.mark.parametrize(
    ("malformed", "said"),
    [
        (
            "not-a-url",
            "invalid configuration: DATABASE_URL: Value error, expected a postgresql:// URL",
        ),
        (
            "postgresql://alerts:hunter22@127.0.0.1:notaport/db",
            "invalid configuration: DATABASE_URL: Value error, is not a valid postgresql:// URL",
        ),
        ("postgresql://x:hunter22@/", "cannot connect to Postgres at postgresql://x:***@/"),
    ],
    ids=["not-a-url", "bad-port", "no-host"],
)
async def test_a_malformed_database_url_is_one_line_without_its_password_and_exit_2(
    stack: Stack, malformed: str, said: str
) -> None:
    env = serve_env(stack)
    env["DATABASE_URL"] = malformed
    code, out, err = await run_command(
        [sys.executable, "-m", "notifier", "serve", "--port", "0"], env
    )

    assert code == 2, err
    assert notifier_lines(err) == err.splitlines(), err
    [line] = notifier_lines(err)
    assert line.startswith(f"notifier: {said}"), line
    assert "hunter22" not in err and "Traceback" not in err


async def test_a_taken_health_port_is_one_line_and_exit_2(stack: Stack) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = serve_env(stack)
        code, _, err = await run_command(
            [sys.executable, "-m", "notifier", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env,
        )

    assert code == 2, err
    [line] = notifier_lines(err)
    assert line.startswith(f"notifier: cannot serve HTTP on 127.0.0.1:{port}: "), err
    assert "Traceback" not in err
