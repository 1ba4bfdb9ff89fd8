"""``recalculator``: the command line (the README's "Commands" table).

Parses the command and runs it (:mod:`recalculator.cli`) through :func:`chassis.runner.main`,
which reads the settings and configures logging. A configuration, connection or input error
ends with one clear line on stderr and exit code 2, never a traceback; any other error is a
bug and ends with its traceback and exit code 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TypeAlias

from chassis.deadletter import add_dead_letter_commands
from chassis.runner import main as run_main
from recalculator import cli
from recalculator.config import Settings
from recalculator.governance import SourceSettingError
from recalculator.registry import UnknownDaos


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < 86_400:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}")
    return seconds


Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""The subcommands of a parser, as each ``_add_*`` adds to them."""


def parser() -> argparse.ArgumentParser:
    """The command line: every command, its options and their help."""
    p = argparse.ArgumentParser(
        prog="recalculator", description="Weekly GVS recalculation of every tracked DAO."
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run(sub)
    sub.add_parser("worker", help="consume RunRequested, run jobs, relay the outbox, serve health")
    _add_trigger(sub)
    sub.add_parser("cron", help="publish a RunRequested at each JOB_SCHEDULE slot (UTC)")
    _add_registry(sub)
    _add_dead_letters(sub)
    sub.add_parser("migrate", help="apply the recalculator's migrations")
    return p


def _add_run(sub: Commands) -> None:
    run = sub.add_parser(
        "run", help="one run in this process (exit 0 completed, 1 failed, 3 refused)"
    )
    run.add_argument(
        "--trigger",
        choices=["manual", "retry", "cron"],
        default="manual",
        help="what the run records as its trigger (default manual)",
    )
    run.add_argument(
        "--dao",
        action="append",
        dest="dao_ids",
        metavar="ID",
        help="score only this DAO (repeatable); default every active DAO",
    )


def _add_trigger(sub: Commands) -> None:
    trigger = sub.add_parser(
        "trigger",
        help="publish a RunRequested; prints its request id (--wait: and the answer; exit 0"
        " accepted, 3 refused, 1 no answer)",
    )
    trigger.add_argument(
        "--trigger",
        choices=["manual", "retry"],
        default="manual",
        help="what the requested run records as its trigger (default manual)",
    )
    trigger.add_argument(
        "--dao",
        action="append",
        dest="dao_ids",
        metavar="ID",
        help="request only this DAO (repeatable); default every active DAO",
    )
    trigger.add_argument(
        "--wait",
        nargs="?",
        const=60.0,
        type=_seconds,
        metavar="SECONDS",
        help="wait up to SECONDS (default 60) for the worker's answer and print it",
    )


def _add_registry(sub: Commands) -> None:
    """``daos import|list`` and ``rankings``."""
    daos = sub.add_parser("daos", help="the DAO registry")
    daos_sub = daos.add_subparsers(dest="daos_command", required=True, metavar="ACTION")
    imp = daos_sub.add_parser("import", help="import a JSON or CSV file, all or nothing")
    imp.add_argument("file", type=Path, help="a .json or .csv file of DAOs")
    imp.add_argument(
        "--if-empty",
        action="store_true",
        help="import only into an empty registry; one holding DAOs is left as it is",
    )
    daos_sub.add_parser("list", help="list the registered DAOs")

    rankings = sub.add_parser("rankings", help="the latest ranking, or one DAO's history")
    rankings.add_argument(
        "--dao", dest="dao_id", metavar="ID", help="this DAO's scores across runs, newest first"
    )


def _add_dead_letters(sub: Commands) -> None:
    add_dead_letter_commands(
        sub,
        "the commands queue's dead letters",
        noun="dead command",
        replay_help="put dead commands back in the commands queue",
        metavar="ACTION",
    )


async def run_command(args: argparse.Namespace, settings: Settings) -> int:
    """Runs the command ``args`` name; returns its exit code."""
    match args.command:
        case "run":
            return await cli.run_once(settings, args.trigger, args.dao_ids)
        case "worker":
            return await cli.run_worker(settings)
        case "trigger":
            return await cli.trigger_run(settings, args.trigger, args.dao_ids, args.wait)
        case "cron":
            return await cli.run_cron(settings)
        case "daos" if args.daos_command == "import":
            return await cli.import_file(settings, args.file, if_empty=args.if_empty)
        case "daos":
            return await cli.show_daos(settings)
        case "rankings":
            return await cli.show_rankings(settings, args.dao_id)
        case "dead-letters":
            return await cli.dead_letters(settings, args.action, getattr(args, "ids", None))
        case _:
            return await cli.run_migrations(settings)


USAGE_ERRORS: tuple[type[Exception], ...] = (UnknownDaos, SourceSettingError)
"""Input the recalculator refuses, beyond the chassis's start-up errors: DAO ids that are not
registered and active, a governance setting at fault (``make_source`` names it)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command in ``argv``; returns its exit code (2 for a setup or input error)."""
    return run_main(
        "recalculator", parser(), Settings, run_command, argv, usage_errors=USAGE_ERRORS
    )


if __name__ == "__main__":
    sys.exit(main())
