"""What each ``recalculator`` command does, as a coroutine: each takes the settings and its
arguments and returns the process's exit code. ``__main__`` parses the command line and runs
them through :func:`chassis.runner.main`, which turns a start-up error into one line and exit
code 2."""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import datetime
from pathlib import Path

from rich.console import Console
from tenacity import AsyncRetrying, stop_after_delay, wait_exponential_jitter

from chassis.broker import connect, declare_topology
from chassis.deadletter import dead_letter_command
from chassis.health import broker_check
from chassis.lifecycle import stop_event_on_signals
from chassis.migrations import migration_report
from chassis.runner import Component, serve
from contracts import RunAccepted, RunRefused, RunRequested
from contracts.events import Trigger
from recalculator.bootstrap import bootstrap, migrate_schema, open_pool
from recalculator.config import Settings
from recalculator.cron import run_schedule
from recalculator.progress import TerminalProgress, summary
from recalculator.rankings import history_table, latest_ranking, ranking_table, score_history
from recalculator.registry import (
    ImportRejected,
    daos_to_score,
    import_daos,
    list_daos,
    read_import_file,
)
from recalculator.run import RunRequest
from recalculator.trigger import answer_listener, publish_run_request, slot_request_id
from recalculator.worker import Worker

log = logging.getLogger(__name__)

EXIT_COMPLETED = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_REFUSED = 3


async def run_once(settings: Settings, trigger: Trigger, dao_ids: list[str] | None) -> int:
    """One run in this process. Returns 0 completed, 1 failed, 3 refused. Waits for the outbox
    to drain (``OUTBOX_DRAIN_TIMEOUT``) and says what is still pending if it must stop."""
    await migrate_schema(settings)
    async with bootstrap(settings) as app:
        if dao_ids is not None:
            await daos_to_score(app.pool, dao_ids)  # unknown ids: bad input, nothing started
        stop = stop_event_on_signals()
        progress = TerminalProgress(Console(stderr=True))
        relay_task = asyncio.create_task(app.relay.run(), name="outbox-relay")
        request = RunRequest(
            job_name=settings.job_name,
            trigger=trigger,
            dao_ids=tuple(dao_ids) if dao_ids is not None else None,
        )
        run_task = asyncio.create_task(app.recalculation.run(request, progress))
        stop_task = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({run_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
            if not run_task.done():
                # SIGTERM: the run records itself failed ("interrupted") and stops.
                run_task.cancel()
            outcome = await asyncio.gather(run_task, return_exceptions=True)
            progress.close()
            # Drain beside the running relay (rows are claimed with SKIP LOCKED): cancelling
            # the relay mid-batch would publish that batch a second time.
            drain_s = settings.outbox_drain_timeout.total_seconds()
            left = await app.relay.drain(drain_s)
        finally:
            progress.close()
            stop_task.cancel()
            relay_task.cancel()
            await asyncio.gather(stop_task, relay_task, return_exceptions=True)
        result = outcome[0]
        if isinstance(result, asyncio.CancelledError):
            print("run interrupted by a signal; recorded as failed")
            code = EXIT_FAILED
        elif isinstance(result, BaseException):
            raise result
        else:
            print(summary(result))
            code = {"completed": EXIT_COMPLETED, "refused": EXIT_REFUSED}.get(
                result.status, EXIT_FAILED
            )
        if left:
            print(
                f"{left} event(s) still pending in the outbox after {drain_s:g}s"
                f" ({app.relay.last_error or 'broker slow'}); they stay there and the worker"
                " relays them when the broker takes them",
                file=sys.stderr,
            )
        return code


async def run_worker(settings: Settings) -> int:
    """Serves the worker until SIGTERM; returns 0, or 1 if a part stopped by itself."""
    return await Worker(settings).run()


async def trigger_run(
    settings: Settings, trigger: Trigger, dao_ids: list[str] | None, wait_s: float | None = None
) -> int:
    """Publishes a RunRequested and prints its request id. With ``wait_s``, also waits that
    long for the worker's answer and prints it: returns 0 accepted, 3 refused, 1 no answer."""
    command = RunRequested(job_name=settings.job_name, trigger=trigger, dao_ids=dao_ids)
    connection = await connect(
        settings.amqp_url.get_secret_value(), timeout_s=settings.connect_timeout.total_seconds()
    )
    try:
        if wait_s is None:
            await publish_run_request(connection, settings.broker_names, command)
            print(command.request_id)
            return 0
        async with answer_listener(connection, settings.broker_names, command) as wait:
            await publish_run_request(connection, settings.broker_names, command)
            print(command.request_id)
            answer = await wait(wait_s)
    finally:
        await connection.close()
    if isinstance(answer, RunAccepted):
        print(f"accepted: job {answer.job_id}")
        return EXIT_COMPLETED
    if isinstance(answer, RunRefused):
        print(f"refused: {answer.payload.reason}")
        return EXIT_REFUSED
    print(
        f"no answer within {wait_s:g}s: the request waits in {settings.commands_queue}"
        " (is a worker running?)",
        file=sys.stderr,
    )
    return EXIT_FAILED


async def run_cron(settings: Settings) -> int:
    """Publishes a RunRequested at each slot until SIGTERM; each publish is retried for up to
    10 minutes, then given up with an error log (the ledger then reports the slot missed).
    Serves ``/healthz``, ``/readyz`` and ``/metrics`` on ``HEALTH_PORT`` meanwhile."""
    connection = await connect(
        settings.amqp_url.get_secret_value(),
        timeout_s=settings.connect_timeout.total_seconds(),
        name="recalculator-cron",
    )
    try:
        async with await connection.channel() as channel:
            await declare_topology(channel, settings.topology)

        async def fire(slot: datetime) -> None:
            iso = slot.isoformat()
            command = RunRequested(
                request_id=slot_request_id(settings.job_name, iso),
                job_name=settings.job_name,
                trigger="cron",
            )
            try:
                async for attempt in AsyncRetrying(
                    stop=stop_after_delay(600), wait=wait_exponential_jitter(1, 60), reraise=True
                ):
                    with attempt:
                        await publish_run_request(connection, settings.broker_names, command)
            except Exception:
                log.exception("could not publish the RunRequested of slot %s", iso)

        # Stopped by the runner (cancelled) on SIGTERM, never by an event of its own.
        schedule = Component(
            "schedule", lambda: run_schedule(settings.job_schedule, fire, asyncio.Event())
        )
        return await serve(
            [schedule],
            checks={"broker": broker_check(connection)},
            host=settings.health_host,
            port=settings.health_port,
        )
    finally:
        await connection.close()


async def import_file(settings: Settings, path: Path, *, if_empty: bool = False) -> int:
    """Imports the DAOs of ``path``, all or nothing; returns 2 (every bad row on stderr) when
    a row is bad. With ``if_empty``, a registry that holds DAOs is left untouched (returns 0)."""
    try:
        records = await read_import_file(path)  # every row checked before anything is written
    except ImportRejected as exc:
        print(f"recalculator: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    await migrate_schema(settings)
    async with open_pool(settings) as pool:
        registered = len(await list_daos(pool)) if if_empty else 0
        if registered:
            print(f"the registry holds {registered} DAOs: nothing imported from {path}")
            return 0
        result = await import_daos(pool, records)
    print(
        f"imported {len(records)} DAOs from {path}: {result.inserted} new, {result.updated} updated"
    )
    return 0


async def show_daos(settings: Settings) -> int:
    from rich.table import Table

    await migrate_schema(settings)
    async with open_pool(settings) as pool:
        daos = await list_daos(pool)
    table = Table(title=f"DAO registry ({len(daos)})")
    for column in ("id", "name", "snapshot space", "active", "updated (UTC)"):
        table.add_column(column)
    for d in daos:
        table.add_row(
            d.id,
            d.name,
            d.snapshot_space,
            "yes" if d.active else "no",
            f"{d.updated_at:%Y-%m-%d %H:%M}",
        )
    Console().print(table)
    return 0


async def show_rankings(settings: Settings, dao_id: str | None) -> int:
    await migrate_schema(settings)
    async with open_pool(settings) as pool:
        if dao_id is None:
            ranking = await latest_ranking(pool)
            Console().print(ranking_table(ranking) if ranking else "no scores yet: run a job first")
        else:
            history = await score_history(pool, dao_id)
            Console().print(
                history_table(dao_id, history) if history else f"no scores for {dao_id}"
            )
    return 0


async def dead_letters(settings: Settings, action: str, ids: list[str] | None) -> int:
    """Lists (``list``) or replays (``replay``) the commands queue's dead letters; a replayed
    command goes back into the commands queue (the default exchange, by the queue's name), where
    the worker takes it. ``ids`` None replays them all. Returns 0."""
    connection = await connect(
        settings.amqp_url.get_secret_value(),
        timeout_s=settings.connect_timeout.total_seconds(),
        name="recalculator-dead-letters",
    )
    try:
        async with await connection.channel() as channel:
            await declare_topology(channel, settings.topology)
        return await dead_letter_command(
            connection,
            action,
            settings.topology.queue(settings.commands_queue).dead_letter_queue,
            "",
            ids,
            routing_key=settings.commands_queue,
        )
    finally:
        await connection.close()


async def run_migrations(settings: Settings) -> int:
    applied = await migrate_schema(settings)
    print(migration_report(settings.recalc_schema, applied))
    return 0
