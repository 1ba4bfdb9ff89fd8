"""The worker: consumes RunRequested, runs one job at a time, relays the outbox, serves health.

The commands queue has a single active consumer and this one takes one message at a time
(prefetch 1), handled in order by one loop. A command is acked once its job row and JobStarted
are committed; ``jobs.request_id`` is unique, so a redelivered command never starts a second
run. An invalid command, or one refused because a run of the job is already going, is
dead-lettered with the reason. SIGTERM stops the consumer, gives the current run
``SHUTDOWN_GRACE`` to finish (then cancels it, which records it failed), drains the outbox
briefly and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from uuid import UUID

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from chassis.broker import declare_queue, declare_topology
from chassis.deadletter import dead_letter
from chassis.health import ReadinessCheck, bound_port, health_app, serve_http
from contracts import ContractError, parse_command
from recalculator.bootstrap import App, bootstrap, migrate_schema
from recalculator.config import Settings
from recalculator.governance import GovernanceSource
from recalculator.run import RunRequest, Scorer, default_scorer

log = logging.getLogger(__name__)

_OUTBOX_DRAIN_ON_STOP_S = 5.0


class CommandConsumer:
    """Takes RunRequested from the commands queue into one in-order handling loop."""

    def __init__(self, app: App, channel: AbstractChannel, queue: AbstractQueue) -> None:
        self._app = app
        self._channel = channel
        self._queue = queue
        # None is the "stop" sentinel put in by detach(), after the messages to give back.
        self._inbox: asyncio.Queue[AbstractIncomingMessage | None] = asyncio.Queue()
        self._consumer_tag: str | None = None
        self._stopping = False
        self.handled = 0

    @property
    def attached(self) -> bool:
        return self._consumer_tag is not None and not self._channel.is_closed

    async def start(self) -> None:
        self._consumer_tag = await self._queue.consume(self._inbox.put)

    async def detach(self) -> None:
        """Stops deliveries; messages delivered but not yet handled go back to the queue."""
        self._stopping = True
        if self._consumer_tag is not None and not self._channel.is_closed:
            await self._queue.cancel(self._consumer_tag)
        self._consumer_tag = None
        while not self._inbox.empty():
            waiting = self._inbox.get_nowait()
            if waiting is not None:
                await waiting.nack(requeue=True)
        self._inbox.put_nowait(None)

    async def handle_forever(self) -> None:
        """Handles messages one after another; returns once detached and idle."""
        while True:
            message = await self._inbox.get()
            if message is None:
                return
            if self._stopping:
                await message.nack(requeue=True)
                continue
            try:
                await self.handle(message)
            except aio_pika.exceptions.AMQPError:
                # The channel went away mid-handling: the broker requeues the unacked
                # message itself, and a committed job is deduplicated by its request_id.
                log.exception("lost the channel while handling a command")
            except Exception:
                # Whatever one command did, the loop must live: were this task to end, the
                # consumer would stay attached (and look ready) while no command is handled
                # ever again. A started job left running is abandoned by the ledger's watchdog.
                log.exception("handling a command failed; taking the next one")
            self.handled += 1

    async def handle(self, message: AbstractIncomingMessage) -> None:
        """Runs the command in ``message`` to its end; acks, dead-letters or requeues it."""
        settings = self._app.settings
        dead_queue = settings.topology.commands.dead_letter_queue
        try:
            command = parse_command(message.body)
        except ContractError as exc:
            await dead_letter(self._channel, message, dead_queue, f"invalid command: {exc}")
            return
        if command.job_name != settings.job_name:
            reason = f"unknown job {command.job_name!r}; this worker runs {settings.job_name!r}"
            await dead_letter(self._channel, message, dead_queue, reason)
            return
        acked = False

        async def ack(job_id: UUID) -> None:
            nonlocal acked
            acked = True
            try:
                await message.ack()
            except aio_pika.exceptions.AMQPError as exc:
                # The job is committed: a redelivery finds its request_id and is not rerun.
                log.warning("could not ack command: %s", exc, extra={"job_id": job_id})

        request = RunRequest(
            job_name=command.job_name,
            trigger=command.trigger,
            dao_ids=tuple(command.dao_ids) if command.dao_ids is not None else None,
            request_id=command.request_id,
        )
        log.info("run requested (%s)", command.trigger, extra={"request_id": command.request_id})
        try:
            outcome = await self._app.recalculation.run(request, on_started=ack)
        except asyncio.CancelledError:
            if not acked:
                with contextlib.suppress(aio_pika.exceptions.AMQPError):
                    await message.nack(requeue=True)
            raise
        except Exception:
            if not acked:
                # The database is away, say: let the command come back (the queue's delivery
                # limit dead-letters it if this never passes).
                log.exception("run could not start; command requeued")
                await asyncio.sleep(1)
                await message.nack(requeue=True)
                return
            raise
        if outcome.status == "refused":
            await dead_letter(self._channel, message, dead_queue, outcome.message)
        elif outcome.status == "duplicate":
            await message.ack()


class Worker:
    """``await Worker(settings).run(stop)`` runs until ``stop`` is set; ``ready`` is set once
    it consumes, and ``http_port`` is the health server's port (useful with HEALTH_PORT=0).
    ``source`` and ``scorer`` replace the configured ones (tests)."""

    def __init__(
        self,
        settings: Settings,
        *,
        source: GovernanceSource | None = None,
        scorer: Scorer = default_scorer,
    ) -> None:
        self._settings = settings
        self._source = source
        self._scorer = scorer
        self.ready = asyncio.Event()
        self.http_port: int | None = None
        self.consumer: CommandConsumer | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Migrates, then serves until ``stop`` is set, then drains and returns. Raises
        ``DatabaseUnavailable``, ``BrokerUnavailable`` or ``MigrationError`` at start."""
        await migrate_schema(self._settings)
        app_context = bootstrap(self._settings, source=self._source, scorer=self._scorer)
        async with app_context as app, self._serving(app) as consumer:
            assert app.relay is not None and app.connection is not None
            relay_task = asyncio.create_task(app.relay.run(), name="outbox-relay")
            handler = asyncio.create_task(consumer.handle_forever(), name="commands")
            try:
                await consumer.start()
                self.ready.set()
                log.info("worker consuming %s", app.settings.commands_queue)
                await stop.wait()
                log.info("stopping: no more commands; finishing the current run")
                await consumer.detach()
                grace = app.settings.shutdown_grace.total_seconds()
                await _finish_or_cancel(handler, grace)
                # Drain beside the running relay: cancelling it mid-batch would publish that
                # batch twice (harmless to consumers, but noise).
                left = await app.relay.drain(_OUTBOX_DRAIN_ON_STOP_S)
                if left:
                    log.warning("%d events still in the outbox; relayed at the next start", left)
            finally:
                for task in (handler, relay_task):
                    task.cancel()
                await asyncio.gather(handler, relay_task, return_exceptions=True)

    @contextlib.asynccontextmanager
    async def _serving(self, app: App) -> AsyncIterator[CommandConsumer]:
        assert app.connection is not None
        channel = await app.connection.channel()
        await channel.set_qos(prefetch_count=1)
        exchange = await declare_topology(channel, app.settings.topology)
        queue = await declare_queue(channel, app.settings.topology.commands, exchange)
        consumer = CommandConsumer(app, channel, queue)
        self.consumer = consumer
        checks = _readiness_checks(app, consumer)
        server_app = health_app(checks)
        async with serve_http(server_app, app.settings.health_host, app.settings.health_port) as s:
            self.http_port = bound_port(s)
            try:
                yield consumer
            finally:
                with contextlib.suppress(aio_pika.exceptions.AMQPError):
                    await channel.close()


async def _finish_or_cancel(task: asyncio.Task[None], grace_s: float) -> None:
    done, _ = await asyncio.wait({task}, timeout=grace_s)
    if not done:
        log.warning("the current run did not finish within %.0fs; cancelling it", grace_s)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _readiness_checks(app: App, consumer: CommandConsumer) -> dict[str, ReadinessCheck]:
    async def database() -> str | None:
        await app.pool.fetchval("SELECT 1")
        return None

    async def broker() -> str | None:
        if app.connection is None or app.connection.is_closed:
            return "broker connection closed"
        return None

    async def commands() -> str | None:
        return None if consumer.attached else "not consuming the commands queue"

    return {"database": database, "broker": broker, "consumer": commands}
