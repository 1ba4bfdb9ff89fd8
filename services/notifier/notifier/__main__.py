"""``notifier serve [--host H] [--port P]``, ``notifier dead-letters list|replay`` and
``notifier migrate``.

Settings come from the environment. A bad setting, an unreachable Postgres or RabbitMQ, a
failing migration or a taken port ends the command with ONE line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from chassis.broker import BrokerUnavailable, connect
from chassis.database import DatabaseUnavailable
from chassis.deadletter import dead_letter_command
from chassis.lifecycle import stop_event_on_signals
from chassis.logs import configure_logging
from chassis.migrations import MigrationError, migration_report
from chassis.settings import SettingsError, load_settings
from notifier.bootstrap import bootstrap
from notifier.config import Settings
from notifier.service import migrate_schema

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="notifier", description="Email and Slack job alerts.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="consume outcome events and send the alerts")
    serve.add_argument("--host", default=None, help="health server address (HEALTH_HOST)")
    serve.add_argument(
        "--port", type=int, default=None, help="health server port (HEALTH_PORT, 8081)"
    )
    dead = commands.add_parser("dead-letters", help="the notifier's dead-letter queue")
    dead_actions = dead.add_subparsers(dest="action", required=True)
    dead_actions.add_parser("list", help="show each dead letter with its reason")
    replay = dead_actions.add_parser("replay", help="put dead letters back on the exchange")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", dest="ids", action="append", metavar="MESSAGE_ID")
    which.add_argument("--all", action="store_true", help="replay every dead letter")
    commands.add_parser("migrate", help="apply the notifier's migrations and exit")
    return parser


async def _migrate(settings: Settings) -> None:
    applied = await migrate_schema(settings.database_url, settings.notifier_schema)
    print(migration_report(settings.notifier_schema, applied))


async def _dead_letters(settings: Settings, action: str, ids: list[str] | None) -> int:
    connection = await connect(
        settings.amqp_url.get_secret_value(),
        timeout_s=settings.connect_timeout.total_seconds(),
        name="notifier-dead-letters",
    )
    try:
        return await dead_letter_command(
            connection,
            action,
            settings.topology.queue(settings.notifier_queue).dead_letter_queue,
            settings.topology.exchange,
            ids,
        )
    finally:
        await connection.close()


async def _serve(settings: Settings, host: str, port: int) -> None:
    stop = stop_event_on_signals()
    await migrate_schema(settings.database_url, settings.notifier_schema)
    async with bootstrap(settings) as notifier:
        await notifier.serve(stop, host=host, port=port)


def main(argv: list[str] | None = None) -> int:
    """Run the command in ``argv``; return the exit code (0 ok, 2 configuration or outage)."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(Settings)
    except SettingsError as exc:
        lines = [line.strip() for line in str(exc).splitlines()]
        print(f"notifier: {lines[0]} {'; '.join(lines[1:])}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(settings.log_level, settings.log_format)
    try:
        if args.command == "migrate":
            asyncio.run(_migrate(settings))
        elif args.command == "dead-letters":
            return asyncio.run(_dead_letters(settings, args.action, getattr(args, "ids", None)))
        else:
            host = args.host if args.host is not None else settings.health_host
            port = args.port if args.port is not None else settings.health_port
            asyncio.run(_serve(settings, host, port))
    except (DatabaseUnavailable, BrokerUnavailable, MigrationError) as exc:
        print(f"notifier: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"notifier: cannot serve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
