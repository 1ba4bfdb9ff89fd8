"""``job-ledger``: serve (API, consumer, watchdog, outbox relay), rebuild, dead-letters, migrate.

``serve --role`` chooses what one process runs (:mod:`job_ledger.service`): ``all`` (the
default), ``api`` (the HTTP API and admin pages alone) or ``fold`` (the consumer, the watchdog
and the outbox relay, with health and metrics only).

Settings come from the environment. A bad setting or argument, an unreachable Postgres or
RabbitMQ, a malformed ``DATABASE_URL``, a failing migration or a taken port ends the command
with ONE line on stderr and exit code 2 (:func:`chassis.runner.main`). ``rebuild`` exits 1
when it had to fix rows; ``serve`` exits 1 when a part stopped by itself.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import uuid
from collections.abc import Sequence

from chassis.deadletter import add_dead_letter_commands, dead_letter_command
from chassis.migrations import migration_report
from chassis.runner import OneLineParser
from chassis.runner import main as run_main
from job_ledger.bootstrap import bootstrap, open_broker, open_pool
from job_ledger.config import Settings
from job_ledger.rebuild import rebuild
from job_ledger.service import API_ROLES, ROLES, admin_password, apply_migrations, serve


def _job_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a job id (a UUID)") from None


def build_parser() -> argparse.ArgumentParser:
    """The command line: ``serve``, ``rebuild``, ``dead-letters list|replay``, ``migrate``."""
    parser = OneLineParser(
        prog="job-ledger", description="The job ledger: serve, rebuild, dead-letters, migrate."
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    serve_cmd = commands.add_parser("serve", help="HTTP API and admin pages, consumer, watchdog")
    serve_cmd.add_argument("--host", help="listen address (default HTTP_HOST, 0.0.0.0)")
    serve_cmd.add_argument("--port", type=int, help="listen port (default HTTP_PORT, 8080)")
    serve_cmd.add_argument(
        "--role",
        choices=ROLES,
        default="all",
        help="all (default): everything; api: the HTTP API and admin pages only;"
        " fold: consumer, watchdog and outbox relay, with health and metrics only",
    )
    rebuild_cmd = commands.add_parser("rebuild", help="replay job_events into job_logs")
    rebuild_cmd.add_argument("--job", type=_job_id, help="only this job id")
    add_dead_letter_commands(commands, "the ledger's dead-letter queue", parser_class=OneLineParser)
    commands.add_parser("migrate", help="apply the ledger's migrations")
    return parser


async def serve_command(settings: Settings, host: str, port: int, role: str) -> int:
    """Migrate, bootstrap and serve ``role``; 0 after a clean stop, 1 after a crash."""
    if role in API_ROLES:
        admin_password(settings)  # refused before anything connects
    await apply_migrations(settings)
    async with bootstrap(settings) as ledger:
        return await serve(ledger, role, host=host, port=port)


async def rebuild_command(settings: Settings, job: uuid.UUID | None) -> int:
    """Migrate, rebuild ``job`` (None: every job) and print what differed; 1 if rows did."""
    await apply_migrations(settings)
    async with open_pool(settings) as pool:
        differences = await rebuild(pool, job)
    for difference in differences:
        for line in difference.describe():
            print(line)
    if differences:
        print(f"{len(differences)} job_logs rows differed from the event store; fixed them")
        return 1
    print("job_logs matches the event store")
    return 0


async def dead_letters_command(settings: Settings, action: str, ids: list[str] | None) -> int:
    """List or replay the ledger's dead letters."""
    async with open_broker(settings) as connection:
        return await dead_letter_command(
            connection,
            action,
            settings.topology.queue(settings.ledger_queue).dead_letter_queue,
            settings.topology.exchange,
            ids,
        )


async def migrate_command(settings: Settings) -> int:
    """Apply the migrations and say which ran."""
    applied = await apply_migrations(settings)
    print(migration_report(settings.ledger_schema, applied))
    return 0


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the parsed command; return its exit code."""
    if args.command == "serve":
        host = args.host or settings.http_host
        port = settings.http_port if args.port is None else args.port
        return await serve_command(settings, host, port, args.role)
    if args.command == "rebuild":
        return await rebuild_command(settings, args.job)
    if args.command == "dead-letters":
        return await dead_letters_command(settings, args.action, getattr(args, "ids", None))
    return await migrate_command(settings)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command in ``argv``; return the exit code (2 for anything that stops a start)."""
    return run_main("job-ledger", build_parser(), Settings, run, argv)


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
