"""What the three command lines offer and how they end: help for every option, ``--version``,
and a bug that is never passed off as bad input."""

from __future__ import annotations

import argparse
import importlib.metadata
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chassis.runner import add_version_option, main
from chassis.settings import BaseServiceSettings
from job_ledger.__main__ import build_parser as ledger_parser
from job_ledger.__main__ import main as ledger_main
from notifier.__main__ import _parser as notifier_parser
from notifier.__main__ import main as notifier_main
from recalculator.__main__ import main as recalculator_main
from recalculator.__main__ import parser as recalculator_parser

REPO = Path(__file__).resolve().parents[2]

PARSERS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "job-ledger": ledger_parser,
    "notifier": notifier_parser,
    "recalculator": recalculator_parser,
}
MAINS: dict[str, Callable[[list[str]], int]] = {
    "job-ledger": ledger_main,
    "notifier": notifier_main,
    "recalculator": recalculator_main,
}


def every_parser(
    parser: argparse.ArgumentParser, path: str
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """``parser`` and each of its subcommands' parsers, however deep, with their command path."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from every_parser(sub, f"{path} {name}")


def without_help(prog: str) -> list[str]:
    """Every argument and subcommand of ``prog`` that says nothing in ``--help`` (but -h)."""
    missing = []
    for path, parser in every_parser(add_version_option(PARSERS[prog]()), prog):
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if isinstance(action, argparse._SubParsersAction):
                listed = {choice.dest for choice in action._choices_actions if choice.help}
                missing += [f"{path} {name}" for name in action.choices if name not in listed]
            elif not action.help:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    return missing


@pytest.mark.parametrize("prog", sorted(PARSERS))
def test_every_option_and_command_has_help(prog: str) -> None:
    assert without_help(prog) == []


def test_the_walk_finds_an_option_without_help() -> None:
    def bare() -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(prog="bare")
        sub = parser.add_subparsers(dest="command")
        sub.add_parser("run", help="run").add_argument("--fast", action="store_true")
        sub.add_parser("quiet")
        return parser

    PARSERS["bare"] = bare
    try:
        assert without_help("bare") == ["bare quiet", "bare run --fast"]
    finally:
        del PARSERS["bare"]


@pytest.mark.parametrize("prog", sorted(MAINS))
def test_version_prints_the_installed_version_and_exits_0(
    prog: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        MAINS[prog](["--version"])
    assert stopped.value.code == 0
    expected = importlib.metadata.version("chainsights-jobs")
    assert capsys.readouterr().out == f"{prog} {expected}\n"


def test_a_built_in_exception_cannot_be_declared_bad_input() -> None:
    async def command(args: argparse.Namespace, settings: BaseServiceSettings) -> int:
        raise AssertionError("must not run")

    parser = argparse.ArgumentParser(prog="svc")
    with pytest.raises(TypeError, match="not ValueError"):
        main("svc", parser, BaseServiceSettings, command, [], usage_errors=(ValueError,))


BUG_IN_A_COMMAND = """
import sys
from recalculator import cli
from recalculator.__main__ import main

async def broken(settings):
    raise ValueError("a bug, not bad input")

cli.show_daos = broken
sys.exit(main(["daos", "list"]))
"""


def test_an_unexpected_value_error_in_a_command_is_a_traceback_and_exit_1() -> None:
    done = subprocess.run(
        [sys.executable, "-c", BUG_IN_A_COMMAND],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback (most recent call last)" in done.stderr
    assert done.stderr.strip().splitlines()[-1] == "ValueError: a bug, not bad input"
    assert "recalculator: a bug" not in done.stderr
