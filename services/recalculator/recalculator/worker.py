"""The worker: answers RunRequested, runs one job at a time, relays the outbox, serves health.

The commands queue has a single active consumer and this one takes one message at a time
(prefetch 1), handled in order by one loop. Every request it can parse gets exactly one answer
through the outbox: RunAccepted, written with the job row and JobStarted (the command is acked
once they are committed), or RunRefused with the reason (a run of the job is already going, a
job this worker does not run, DAO ids unknown or inactive, an empty DAO list), then acked. A
redelivered request finds its answer (:mod:`recalculator.answers`) and is acked without a
second run or a second answer. Only a body that is no RunRequested at all is dead-lettered.

The consumer sits on a :class:`chassis.attachment.Attachment`: ``/readyz`` asks our channel and
the broker whether the commands queue has our consumer, and a watch attaches a lost one again
on a fresh channel. SIGTERM stops the consumer, gives the current run ``SHUTDOWN_GRACE`` to
finish (then cancels it, which records it failed), drains the outbox briefly and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from uuid import UUID

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from chassis.attachment import CHANNEL_GONE_ERRORS, Attachment, watch_attachment
from chassis.broker import declare_topology, publisher_channel
from chassis.deadletter import dead_letter
from chassis.health import ReadinessCheck, bound_port, health_app, serve_http
from chassis.topology import dead_letter_queue
from contracts import ContractError, RunRequested, parse_command
from recalculator.answers import RequestAnswers, refusal_before_running
from recalculator.bootstrap import App, bootstrap, migrate_schema
from recalculator.config import Settings
from recalculator.governance import GovernanceSource
from recalculator.run import RunRequest, Scorer, default_scorer

log = logging.getLogger(__name__)

_OUTBOX_DRAIN_ON_STOP_S = 5.0
# Pause before requeueing a request the database could not take, so an outage is not a spin.
_REQUEUE_PAUSE_S = 1.0
WATCH_INTERVAL_S = 5.0
"""How often the watch checks that the commands queue still has our consumer."""


class _Delivery:
    """One command's message; acked once, and an ack the broker cannot take is no error."""

    def __init__(self, message: AbstractIncomingMessage) -> None:
        self.message = message
        self.acked = False

    async def ack(self, job_id: UUID | None = None) -> None:
        self.acked = True
        try:
            await self.message.ack()
        except CHANNEL_GONE_ERRORS as exc:
            # The answer is committed: the redelivery finds it and is not answered again.
            log.warning(
                "could not ack command: %s", exc or type(exc).__name__, extra={"job_id": job_id}
            )


def _channel_closed(message: AbstractIncomingMessage) -> bool:
    try:
        return message.channel.is_closed
    except CHANNEL_GONE_ERRORS:
        return True


class CommandConsumer:
    """Takes RunRequested from the commands queue into one in-order handling loop."""

    def __init__(
        self, app: App, dead_letter_channel: AbstractChannel, answers: RequestAnswers
    ) -> None:
        """``dead_letter_channel`` must have publisher confirms: a dead letter is confirmed
        before its original is acked."""
        assert app.connection is not None
        self._app = app
        self._dead_letter_channel = dead_letter_channel
        self._answers = answers
        # None is the "stop" sentinel put in by detach(), after the messages to give back.
        self._inbox: asyncio.Queue[AbstractIncomingMessage | None] = asyncio.Queue()
        self._attachment = Attachment(
            app.connection,
            app.settings.topology.queue(app.settings.commands_queue),
            1,
            self._on_message,
        )
        self._stopping = False
        self.handled = 0

    @property
    def attachment(self) -> Attachment:
        """The consumer on the queue: its readiness check, and what the watch re-attaches."""
        return self._attachment

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self._inbox.put_nowait(message)

    async def start(self) -> None:
        """Consume the commands queue; raises the broker's error if it cannot."""
        await self._attachment.attach()

    async def detach(self) -> None:
        """Stops deliveries; messages delivered but not yet handled go back to the queue."""
        self._stopping = True
        await self._attachment.detach()
        while not self._inbox.empty():
            waiting = self._inbox.get_nowait()
            if waiting is not None:
                with contextlib.suppress(*CHANNEL_GONE_ERRORS):
                    await waiting.nack(requeue=True)
        self._inbox.put_nowait(None)

    async def handle_forever(self) -> None:
        """Handles messages one after another; returns once detached and idle."""
        while True:
            message = await self._inbox.get()
            if message is None:
                return
            if self._stopping:
                with contextlib.suppress(*CHANNEL_GONE_ERRORS):
                    await message.nack(requeue=True)
                continue
            if _channel_closed(message):
                # Delivered on a channel since closed (a re-attach, a broker restart): the
                # broker took it back and delivers it again on the current one.
                continue
            try:
                await self.handle(message)
            except CHANNEL_GONE_ERRORS:
                # The channel went away mid-handling: the broker requeues the unacked
                # message itself, and an answered request is not answered again.
                log.exception("lost the channel while handling a command")
            except Exception:
                # Whatever one command did, the loop must live: were this task to end, the
                # consumer would stay attached (and look ready) while no command is handled
                # ever again. A started job left running is abandoned by the ledger's watchdog.
                log.exception("handling a command failed; taking the next one")
            self.handled += 1

    async def handle(self, message: AbstractIncomingMessage) -> None:
        """Answers the command in ``message`` (running it to its end when accepted); acks,
        dead-letters (no RunRequested) or requeues it (the database is away)."""
        try:
            command = parse_command(message.body)
        except ContractError as exc:
            dead_queue = dead_letter_queue(self._app.settings.commands_queue)
            await dead_letter(
                self._dead_letter_channel, message, dead_queue, f"invalid command: {exc}"
            )
            return
        delivery = _Delivery(message)
        try:
            await self._answer(command, delivery)
        except asyncio.CancelledError:
            if not delivery.acked:
                with contextlib.suppress(*CHANNEL_GONE_ERRORS):
                    await message.nack(requeue=True)
            raise
        except Exception:
            if delivery.acked:
                raise
            # The database is away, say: let the command come back (the queue's delivery
            # limit dead-letters it if this never passes).
            log.exception(
                "request could not be answered; requeued",
                extra={"request_id": command.request_id},
            )
            await asyncio.sleep(_REQUEUE_PAUSE_S)
            await message.nack(requeue=True)

    async def _answer(self, command: RunRequested, delivery: _Delivery) -> None:
        extra = {"request_id": command.request_id}
        answered = await self._answers.answer_of(command.request_id)
        if answered is not None:
            log.info("request already %s; not answered again", answered, extra=extra)
            await delivery.ack()
            return
        reason = refusal_before_running(command, self._app.settings.job_name)
        if reason is None:
            log.info("run requested (%s)", command.trigger, extra=extra)
            request = RunRequest(
                job_name=command.job_name,
                trigger=command.trigger,
                dao_ids=tuple(command.dao_ids) if command.dao_ids is not None else None,
                request_id=command.request_id,
            )
            outcome = await self._app.recalculation.run(request, on_started=delivery.ack)
            if outcome.status == "duplicate":
                await delivery.ack()
            if outcome.status != "refused":
                return
            reason = outcome.message
        await self._answers.refuse(command, reason)
        await delivery.ack()


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
        watch_interval_s: float = WATCH_INTERVAL_S,
    ) -> None:
        self._settings = settings
        self._source = source
        self._scorer = scorer
        self._watch_interval_s = watch_interval_s
        self.ready = asyncio.Event()
        self.http_port: int | None = None
        self.consumer: CommandConsumer | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Migrates, then serves until ``stop`` is set, then drains and returns. Raises
        ``DatabaseUnavailable``, ``BrokerUnavailable`` or ``MigrationError`` at start."""
        await migrate_schema(self._settings)
        app_context = bootstrap(self._settings, source=self._source, scorer=self._scorer)
        async with app_context as app, self._serving(app) as consumer:
            assert app.relay is not None
            relay_task = asyncio.create_task(app.relay.run(), name="outbox-relay")
            handler = asyncio.create_task(consumer.handle_forever(), name="commands")
            watch: asyncio.Task[None] | None = None
            try:
                await consumer.start()
                watch = asyncio.create_task(
                    watch_attachment(consumer.attachment, self._watch_interval_s),
                    name="consumer-watch",
                )
                self.ready.set()
                log.info("worker consuming %s", app.settings.commands_queue)
                await stop.wait()
                log.info("stopping: no more commands; finishing the current run")
                # Before the consumer stops: a re-attach in the drain would take new work.
                watch.cancel()
                await asyncio.gather(watch, return_exceptions=True)
                await consumer.detach()
                grace = app.settings.shutdown_grace.total_seconds()
                await _finish_or_cancel(handler, grace)
                # Drain beside the running relay: cancelling it mid-batch would publish that
                # batch twice (harmless to consumers, but noise).
                left = await app.relay.drain(_OUTBOX_DRAIN_ON_STOP_S)
                if left:
                    log.warning("%d events still in the outbox; relayed at the next start", left)
            finally:
                tasks = [t for t in (watch, handler, relay_task) if t is not None]
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    @contextlib.asynccontextmanager
    async def _serving(self, app: App) -> AsyncIterator[CommandConsumer]:
        assert app.connection is not None and app.relay is not None
        dead_letters = await publisher_channel(app.connection)
        try:
            await declare_topology(dead_letters, app.settings.topology)
            answers = RequestAnswers(app.pool, app.settings.events_exchange, app.relay.wake)
            consumer = CommandConsumer(app, dead_letters, answers)
            self.consumer = consumer
            server_app = health_app(_readiness_checks(app, consumer))
            host, port = app.settings.health_host, app.settings.health_port
            async with serve_http(server_app, host, port) as server:
                self.http_port = bound_port(server)
                yield consumer
        finally:
            with contextlib.suppress(*CHANNEL_GONE_ERRORS, TimeoutError):
                await dead_letters.close()


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

    return {"database": database, "broker": broker, "consumer": consumer.attachment.problem}
