"""The worker: answers RunRequested, runs one job at a time, relays the outbox, serves health.

The commands queue has a single active consumer, and this one takes one message at a time
(prefetch 1), in order (:class:`chassis.consumer.DeliveryConsumer`). Every request it can parse
gets exactly one answer through the outbox: RunAccepted, written with the job row and
JobStarted (the command is acked once they are committed, while the run goes on), or RunRefused
with the reason (a run of the job is already going, a job this worker does not run, DAO ids
unknown or inactive, an empty DAO list), then acked. A redelivered request finds its answer
(:mod:`recalculator.answers`) and is acked without a second run or a second answer. A body
that is no RunRequested at all is dead-lettered; a request the database could not take is
requeued after a pause.

The chassis runner (:func:`chassis.runner.serve`) serves ``/healthz``, ``/readyz`` (database,
broker, consumer) and ``/metrics``, starts the parts in this order and stops them in the
reverse one on SIGTERM or on the first crash:

| part         | runs                                        | on stop                            |
|--------------|---------------------------------------------|------------------------------------|
| outbox-relay | publishes the answers and the job's events  | publishes what it can, 5 s         |
| consumer     | answers RunRequested, runs accepted jobs    | takes no new command; the current  |
|              | (re-attached if the broker loses it)        | run gets ``SHUTDOWN_GRACE``, then  |
|              |                                             | is cancelled (recorded failed)     |
"""

from __future__ import annotations

import asyncio
import logging

from chassis.consumer import WATCH_INTERVAL_S, DeliveryConsumer, Rejected
from chassis.delivery import Delivery
from chassis.health import broker_check, database_check
from chassis.runner import Component, Serving, relay_component, serve
from contracts import ContractError, RunRequested, parse_command
from recalculator.answers import RequestAnswers, refusal_before_running
from recalculator.bootstrap import App, bootstrap, migrate_schema
from recalculator.config import Settings
from recalculator.governance import GovernanceSource
from recalculator.run import Recalculation, RunRequest, Scorer, default_scorer

log = logging.getLogger(__name__)

OUTBOX_DRAIN_ON_STOP_S = 5.0


def parse_run_request(body: bytes) -> RunRequested:
    """The RunRequested ``body`` carries; raises ``Rejected`` (dead-lettered) for any other."""
    try:
        return parse_command(body)
    except ContractError as exc:
        raise Rejected(f"invalid command: {exc}", cause="invalid") from exc


class RunRequestHandler:
    """Answers a RunRequested once, running it to its end when accepted."""

    def __init__(
        self, recalculation: Recalculation, answers: RequestAnswers, job_name: str
    ) -> None:
        self._recalculation = recalculation
        self._answers = answers
        self._job_name = job_name

    async def __call__(self, command: RunRequested, delivery: Delivery) -> None:
        """Answer ``command``; ``delivery`` is acked as soon as an accepted run has started.
        Raises the database's error when it could not answer (the command comes back)."""
        extra = {"request_id": command.request_id}
        answered = await self._answers.answer_of(command.request_id)
        if answered is not None:
            log.info("request already %s; not answered again", answered, extra=extra)
            return
        reason = refusal_before_running(command, self._job_name)
        if reason is None:
            log.info("run requested (%s)", command.trigger, extra=extra)
            request = RunRequest(
                job_name=command.job_name,
                trigger=command.trigger,
                dao_ids=tuple(command.dao_ids) if command.dao_ids is not None else None,
                request_id=command.request_id,
            )
            outcome = await self._recalculation.run(
                request, on_started=lambda _job_id: delivery.ack()
            )
            if outcome.status != "refused":
                return
            reason = outcome.message
        await self._answers.refuse(command, reason)


def command_consumer(app: App, watch_interval_s: float) -> DeliveryConsumer[RunRequested]:
    """The consumer of the commands queue: one command at a time, in order."""
    settings = app.settings
    answers = RequestAnswers(app.pool, settings.events_exchange, app.relay.wake)
    return DeliveryConsumer(
        app.connection,
        settings.topology.queue(settings.commands_queue),
        parse_run_request,
        RunRequestHandler(app.recalculation, answers, settings.job_name),
        prefetch=1,
        concurrency=1,
        watch_interval_s=watch_interval_s,
    )


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
        self.consumer: DeliveryConsumer[RunRequested] | None = None

    async def run(self, stop: asyncio.Event | None = None) -> int:
        """Migrates, then serves until ``stop`` is set (default: SIGTERM or SIGINT), then
        drains; returns 0, or 1 if a part stopped by itself. Raises ``DatabaseUnavailable``,
        ``BrokerUnavailable``, ``MigrationError`` or ``CannotServe`` at start."""
        await migrate_schema(self._settings)
        async with bootstrap(self._settings, source=self._source, scorer=self._scorer) as app:
            consumer = command_consumer(app, self._watch_interval_s)
            self.consumer = consumer
            components = [
                relay_component(app.relay, OUTBOX_DRAIN_ON_STOP_S),
                Component(
                    "consumer",
                    consumer.run,
                    start=consumer.start,
                    stop=consumer.stop,
                    stop_timeout_s=app.settings.shutdown_grace.total_seconds(),
                    ready=consumer.problem,
                ),
            ]
            checks = {"database": database_check(app.pool), "broker": broker_check(app.connection)}
            return await serve(
                components,
                checks=checks,
                host=app.settings.health_host,
                port=app.settings.health_port,
                stop=stop,
                on_ready=self._on_ready,
            )

    def _on_ready(self, serving: Serving) -> None:
        self.http_port = serving.port
        self.ready.set()
        log.info("worker consuming %s", self._settings.commands_queue)
