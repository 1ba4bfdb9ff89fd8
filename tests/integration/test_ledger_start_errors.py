"""``job-ledger`` that cannot start says why in ONE stderr line and exits 2, for every command:
a malformed ``DATABASE_URL`` (never echoing its password), an unreachable RabbitMQ, a bad
setting and a taken HTTP port; run as the console script in a subprocess."""

from __future__ import annotations

import socket

import pytest

from tests.harness.processes import SCRIPTS, run_command
from tests.harness.stack import Stack

COMMANDS = {
    "serve": ["serve", "--host", "127.0.0.1", "--port", "0"],
    "serve-fold": ["serve", "--role", "fold", "--host", "127.0.0.1", "--port", "0"],
    "migrate": ["migrate"],
    "rebuild": ["rebuild"],
}


async def ledger(stack: Stack, args: list[str], **values: str) -> tuple[int, str]:
    """Run ``job-ledger args`` on this test's schema with ``values`` set; return (code, stderr)."""
    env = {
        "PATH": "/usr/bin:/bin",
        **stack.ledger_env(),
        "ADMIN_PASSWORD": "not-a-real-secret",
        "CONNECT_TIMEOUT": "2s",
        **values,
    }
    code, _, err = await run_command([str(SCRIPTS / "job-ledger"), *args], env)
    return code, err


def one_line(err: str) -> str:
    """The only line on stderr besides the JSON log records, which must be the ledger's own."""
    lines = [line for line in err.splitlines() if not line.startswith("{")]
    assert len(lines) == 1, err
    assert lines[0].startswith("job-ledger: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize(
    ("malformed", "said"),
    [
        (
            "not-a-url",
            "invalid configuration: DATABASE_URL: Value error, expected a postgresql:// URL",
        ),
        (
            "postgresql://ledger:hunter22@127.0.0.1:notaport/db",
            "invalid configuration: DATABASE_URL: Value error, is not a valid postgresql:// URL",
        ),
    ],
    ids=["not-a-url", "bad-port"],
)
async def test_a_malformed_database_url_is_one_line_without_its_password_and_exit_2(
    stack: Stack, command: str, malformed: str, said: str
) -> None:
    code, err = await ledger(stack, COMMANDS[command], DATABASE_URL=malformed)

    assert code == 2, err
    assert one_line(err).startswith(f"job-ledger: {said}")
    assert "hunter22" not in err


@pytest.mark.parametrize("args", [COMMANDS["serve"], ["dead-letters", "list"]], ids=str)
async def test_an_unreachable_broker_is_one_line_and_exit_2(stack: Stack, args: list[str]) -> None:
    nobody = stack.port()  # held, nothing listens
    amqp_url = f"amqp://guest:hunter22@127.0.0.1:{nobody}/"

    code, err = await ledger(stack, args, AMQP_URL=amqp_url)

    assert code == 2, err
    assert one_line(err).startswith("job-ledger: cannot connect to RabbitMQ at "), err
    assert "hunter22" not in err


async def test_a_bad_setting_is_one_line_naming_the_variable_and_exit_2(stack: Stack) -> None:
    code, err = await ledger(stack, ["migrate"], LEDGER_BATCH_SIZE="0", JOB_SCHEDULE="soon")

    assert code == 2, err
    line = one_line(err)
    assert line.startswith("job-ledger: invalid configuration: "), line
    assert (
        "LEDGER_BATCH_SIZE: " in line and "JOB_SCHEDULE: Value error, 'soon' is not a cron" in line
    )


async def test_a_taken_http_port_is_one_line_and_exit_2(stack: Stack) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = await ledger(stack, ["serve", "--host", "127.0.0.1", "--port", str(port)])

    assert code == 2, err
    assert one_line(err).startswith(f"job-ledger: cannot serve HTTP on 127.0.0.1:{port}: ")
