"""``job-ledger``: serve (API, consumer, watchdog, outbox relay), rebuild, dead-letters, migrate.

``serve --role`` chooses what one process runs: ``all`` (the default) everything in one
process; ``api`` the HTTP API and admin pages alone; ``fold`` the consumer, the watchdog and
the outbox relay, with ``/healthz``, ``/readyz`` and ``/metrics`` only. An ``api`` and a
``fold`` process on the same schema and broker names together do what one ``all`` does, and
the fold's batches then never hold up the API's event loop.

Every failure to start (configuration, Postgres, RabbitMQ, bad arguments) ends as one line on
stderr and exit code 2, never a traceback. ``rebuild`` exits 1 when it had to fix rows.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import uuid
from collections.abc import Sequence
from typing import NoReturn

import aio_pika
import asyncpg
from starlette.applications import Starlette

from chassis.attachment import watch_attachment
from chassis.broker import BrokerUnavailable
from chassis.database import DatabaseUnavailable, migrate
from chassis.deadletter import dead_letter_command
from chassis.health import ReadinessCheck, bound_port, health_app, serve_http
from chassis.lifecycle import stop_event_on_signals
from chassis.logs import configure_logging
from chassis.migrations import MigrationError, migration_report
from chassis.outbox import MIGRATIONS as OUTBOX_MIGRATIONS
from chassis.settings import SettingsError, load_settings
from job_ledger.bootstrap import Ledger, bootstrap, open_broker, open_pool
from job_ledger.config import Settings
from job_ledger.migrations import MIGRATIONS
from job_ledger.rebuild import rebuild

log = logging.getLogger("job_ledger")

DRAIN_TIMEOUT_S = 15.0

ROLES = ("all", "api", "fold")
"""What ``serve --role`` may run: everything, the HTTP API alone, or the fold alone."""


class UsageError(Exception):
    """Bad command-line input; reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _job_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a job id (a UUID)") from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="job-ledger", description="The job ledger: serve, rebuild, dead-letters, migrate."
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    serve = commands.add_parser("serve", help="HTTP API and admin pages, consumer, watchdog")
    serve.add_argument("--host", help="listen address (default HTTP_HOST, 0.0.0.0)")
    serve.add_argument("--port", type=int, help="listen port (default HTTP_PORT, 8080)")
    serve.add_argument(
        "--role",
        choices=ROLES,
        default="all",
        help="all (default): everything; api: the HTTP API and admin pages only;"
        " fold: consumer, watchdog and outbox relay, with health and metrics only",
    )
    rebuild_cmd = commands.add_parser("rebuild", help="replay job_events into job_logs")
    rebuild_cmd.add_argument("--job", type=_job_id, help="only this job id")
    dead = commands.add_parser("dead-letters", help="the ledger's dead-letter queue")
    dead_commands = dead.add_subparsers(dest="action", required=True, parser_class=_Parser)
    dead_commands.add_parser("list", help="show each dead letter with its reason")
    replay = dead_commands.add_parser("replay", help="put dead letters back on the exchange")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", action="append", dest="ids", metavar="MESSAGE_ID")
    which.add_argument("--all", action="store_true")
    commands.add_parser("migrate", help="apply the ledger's migrations")
    return parser


async def apply_migrations(settings: Settings) -> list[str]:
    """Apply the outbox's then the ledger's migrations; return what ran."""
    return await migrate(
        settings.database_url, settings.ledger_schema, [OUTBOX_MIGRATIONS, MIGRATIONS]
    )


async def serve(settings: Settings, host: str, port: int, role: str = "all") -> int:
    """Run ``role`` (see :data:`ROLES`) until SIGTERM/SIGINT, then drain.

    Returns 0 after a clean stop, 1 if a part crashed. Raises ``SettingsError`` when a role
    that serves the API has no ``ADMIN_PASSWORD``.
    """
    serves_api = role in ("all", "api")
    folds = role in ("all", "fold")
    admin_password = _admin_password(settings) if serves_api else ""
    await apply_migrations(settings)
    stop = stop_event_on_signals()
    async with bootstrap(settings) as ledger:
        readiness: dict[str, ReadinessCheck] = dict(ledger.readiness)
        if folds:
            readiness["consumer"] = ledger.consumer.attachment.problem
        app = (
            await _web_app(ledger, admin_password, readiness)
            if serves_api
            else health_app(readiness)
        )
        tasks = await _start_fold(ledger) if folds else set()
        async with serve_http(app, host, port) as server:
            log.info("job-ledger (%s) serving on %s:%d", role, host, bound_port(server))
            stopper = asyncio.create_task(stop.wait(), name="stop")
            done, _ = await asyncio.wait({*tasks, stopper}, return_when=asyncio.FIRST_COMPLETED)
            crashed = [t for t in done if t is not stopper]
            for task in crashed:
                log.error("%s stopped unexpectedly: %r", task.get_name(), task.exception())
            stopper.cancel()
            failed = await _stop_fold(ledger, tasks) if tasks else False
    log.info("job-ledger stopped")
    return 1 if crashed or failed else 0


async def _start_fold(ledger: Ledger) -> set[asyncio.Task[None]]:
    """Attach the consumer and start the fold's tasks (consumer, its watch, watchdog, relay)."""
    await ledger.consumer.start()
    return {
        asyncio.create_task(ledger.consumer.run(), name="consumer"),
        asyncio.create_task(watch_attachment(ledger.consumer.attachment), name="consumer-watch"),
        asyncio.create_task(ledger.watchdog.run(), name="watchdog"),
        asyncio.create_task(ledger.relay.run(), name="outbox-relay"),
    }


async def _stop_fold(ledger: Ledger, tasks: set[asyncio.Task[None]]) -> bool:
    """Let the batch in hand commit, stop the tasks, publish what the outbox holds.

    Returns True if a task had failed.
    """
    consumer_task = next(t for t in tasks if t.get_name() == "consumer")
    await ledger.consumer.stop()
    if not consumer_task.done():
        try:
            await asyncio.wait_for(asyncio.shield(consumer_task), DRAIN_TIMEOUT_S)
        except TimeoutError:
            log.warning("in-flight batch not done in %.0fs; its messages are requeued", 15.0)
    for task in tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    left = await ledger.relay.drain(timeout_s=5)
    if left:
        log.warning("%d outbox messages left for the next start", left)
    return any(
        isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError) for r in results
    )


def _admin_password(settings: Settings) -> str:
    """``ADMIN_PASSWORD``; raises ``SettingsError`` when it is unset (the API never serves open)."""
    if settings.admin_password is None:
        raise SettingsError(
            "invalid configuration:\n  ADMIN_PASSWORD: is required but not set"
            " (it protects the admin API; the ledger does not serve without it)"
        )
    return settings.admin_password.get_secret_value()


async def _web_app(
    ledger: Ledger, admin_password: str, readiness: dict[str, ReadinessCheck]
) -> Starlette:
    """The API and admin pages (imported here: the other commands need none of it)."""
    from job_ledger.web.app import create_app

    return create_app(
        pool=ledger.pool,
        admin_password=admin_password,
        request_run=ledger.request_run,
        readiness=readiness,
        session_secret=await asyncio.to_thread(ledger.settings.session_secret_value),
        admin_base_url=ledger.settings.admin_base_url,
        job_name=ledger.settings.job_name,
        job_schedule=ledger.settings.job_schedule,
        clock=ledger.clock,
    )


async def rebuild_command(settings: Settings, job: uuid.UUID | None) -> int:
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
    async with open_broker(settings) as connection:
        return await dead_letter_command(
            connection,
            action,
            settings.topology.queue(settings.ledger_queue).dead_letter_queue,
            settings.topology.exchange,
            ids,
        )


async def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "serve":
        return await serve(
            settings,
            args.host or settings.http_host,
            settings.http_port if args.port is None else args.port,
            args.role,
        )
    if args.command == "rebuild":
        await apply_migrations(settings)
        return await rebuild_command(settings, args.job)
    if args.command == "dead-letters":
        return await dead_letters_command(settings, args.action, getattr(args, "ids", None))
    applied = await apply_migrations(settings)
    print(migration_report(settings.ledger_schema, applied))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command in ``argv``; return the exit code (2 for anything that stops a start)."""
    try:
        args = build_parser().parse_args(argv)
        settings = load_settings(Settings)
    except UsageError as exc:
        print(f"job-ledger: error: {exc}", file=sys.stderr)
        return 2
    except SettingsError as exc:
        print(f"job-ledger: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    try:
        return asyncio.run(run(args, settings))
    except SettingsError as exc:
        print(f"job-ledger: {_one_line(str(exc))}", file=sys.stderr)
    except (DatabaseUnavailable, BrokerUnavailable, MigrationError) as exc:
        print(f"job-ledger: {exc}", file=sys.stderr)
    except (OSError, asyncpg.PostgresError, aio_pika.exceptions.AMQPError) as exc:
        print(f"job-ledger: {type(exc).__name__}: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    return 2


def _one_line(text: str) -> str:
    return "; ".join(part.strip() for part in text.splitlines() if part.strip())


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
