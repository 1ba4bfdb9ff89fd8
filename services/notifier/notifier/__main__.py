"""``notifier serve [--host H] [--port P]``, ``notifier dead-letters list|replay`` and
``notifier migrate``.

Settings come from the environment. A bad setting, an unreachable Postgres or RabbitMQ, a
failing migration or a taken port ends the command with ONE line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys

from chassis.broker import connect
from chassis.deadletter import add_dead_letter_commands, dead_letter_command
from chassis.migrations import migration_report
from chassis.runner import main as run_main
from notifier.bootstrap import bootstrap
from notifier.config import Settings
from notifier.service import migrate_schema


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="notifier", description="Email and Slack job alerts.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="consume outcome events and send the alerts")
    serve.add_argument("--host", default=None, help="health server address (HEALTH_HOST)")
    serve.add_argument(
        "--port", type=int, default=None, help="health server port (HEALTH_PORT, 8081)"
    )
    add_dead_letter_commands(commands, "the notifier's dead-letter queue")
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


async def _serve(settings: Settings, host: str, port: int) -> int:
    await migrate_schema(settings.database_url, settings.notifier_schema)
    async with bootstrap(settings) as notifier:
        return await notifier.serve(host=host, port=port)


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "migrate":
        await _migrate(settings)
        return 0
    if args.command == "dead-letters":
        return await _dead_letters(settings, args.action, getattr(args, "ids", None))
    host = args.host if args.host is not None else settings.health_host
    port = args.port if args.port is not None else settings.health_port
    return await _serve(settings, host, port)


def main(argv: list[str] | None = None) -> int:
    """Run the command in ``argv``; return the exit code (0 ok, 1 a part crashed, 2
    configuration or outage)."""
    return run_main("notifier", _parser(), Settings, _run, argv)


if __name__ == "__main__":
    sys.exit(main())
