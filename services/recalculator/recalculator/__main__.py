"""``recalculator``: the command line (the README's "Commands" table).

Loads the settings, configures logging and runs one command. A configuration, connection or
input error ends with one clear line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from chassis.broker import BrokerUnavailable
from chassis.database import DatabaseUnavailable
from chassis.logs import configure_logging
from chassis.migrations import MigrationError
from chassis.settings import SettingsError, load_settings
from recalculator import commands
from recalculator.config import Settings
from recalculator.registry import ImportRejected, UnknownDaos

EXIT_BAD_SETUP = 2


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < 86_400:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}")
    return seconds


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="recalculator", description="Weekly GVS recalculation of every tracked DAO."
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run", help="one run in this process (exit 0 completed, 1 failed, 3 refused)"
    )
    run.add_argument("--trigger", choices=["manual", "retry", "cron"], default="manual")
    run.add_argument(
        "--dao",
        action="append",
        dest="dao_ids",
        metavar="ID",
        help="score only this DAO (repeatable); default every active DAO",
    )

    sub.add_parser("worker", help="consume RunRequested, run jobs, relay the outbox, serve health")

    trigger = sub.add_parser(
        "trigger",
        help="publish a RunRequested; prints its request id (--wait: and the answer; exit 0"
        " accepted, 3 refused, 1 no answer)",
    )
    trigger.add_argument("--trigger", choices=["manual", "retry"], default="manual")
    trigger.add_argument("--dao", action="append", dest="dao_ids", metavar="ID")
    trigger.add_argument(
        "--wait",
        nargs="?",
        const=60.0,
        type=_seconds,
        metavar="SECONDS",
        help="wait up to SECONDS (default 60) for the worker's answer and print it",
    )

    sub.add_parser("cron", help="publish a RunRequested at each JOB_SCHEDULE slot (UTC)")

    daos = sub.add_parser("daos", help="the DAO registry")
    daos_sub = daos.add_subparsers(dest="daos_command", required=True, metavar="ACTION")
    imp = daos_sub.add_parser("import", help="import a JSON or CSV file, all or nothing")
    imp.add_argument("file", type=Path)
    daos_sub.add_parser("list", help="list the registered DAOs")

    rankings = sub.add_parser("rankings", help="the latest ranking, or one DAO's history")
    rankings.add_argument("--dao", dest="dao_id", metavar="ID")

    sub.add_parser("migrate", help="apply the recalculator's migrations")
    return p


def command_for(args: argparse.Namespace, settings: Settings) -> Coroutine[Any, Any, int]:
    match args.command:
        case "run":
            return commands.run_once(settings, args.trigger, args.dao_ids)
        case "worker":
            return commands.run_worker(settings)
        case "trigger":
            return commands.trigger_run(settings, args.trigger, args.dao_ids, args.wait)
        case "cron":
            return commands.run_cron(settings)
        case "daos" if args.daos_command == "import":
            return commands.import_file(settings, args.file)
        case "daos":
            return commands.show_daos(settings)
        case "rankings":
            return commands.show_rankings(settings, args.dao_id)
        case _:
            return commands.run_migrations(settings)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command in ``argv``; returns its exit code (2 for a setup or input error)."""
    args = parser().parse_args(argv)
    try:
        settings = load_settings(Settings)
    except SettingsError as exc:
        # One line, so a container log shows the whole reason at a glance.
        print(f"recalculator: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_BAD_SETUP
    configure_logging(settings.log_level, settings.log_format)
    try:
        return asyncio.run(command_for(args, settings))
    except ImportRejected as exc:
        print(f"recalculator: {exc}", file=sys.stderr)
    except (DatabaseUnavailable, BrokerUnavailable, MigrationError, UnknownDaos) as exc:
        print(f"recalculator: {exc}", file=sys.stderr)
    except ValueError as exc:  # a governance setting at fault (make_source names it)
        print(f"recalculator: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("recalculator: interrupted", file=sys.stderr)
        return 130
    return EXIT_BAD_SETUP


if __name__ == "__main__":
    sys.exit(main())
