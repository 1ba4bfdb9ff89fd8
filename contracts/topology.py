"""The broker topology as data: the exchange, the durable queues, their bindings and dead letters.

Every service declares the whole topology at start (:func:`chassis.broker.declare_topology`),
so whichever connects first, the system of record's queue exists before any event is published.
Declaring is idempotent as long as the arguments below do not change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

EXCHANGE_DEFAULT = "jobs.events"
LEDGER_QUEUE_DEFAULT = "job-ledger.events"
NOTIFIER_QUEUE_DEFAULT = "notifier.events"
COMMANDS_QUEUE_DEFAULT = "recalculator.commands"

# A last guard only: consumers reject bad messages themselves at once. It must stay well above
# the number of crash-requeues one message can see (every in-flight message is charged per crash).
DELIVERY_LIMIT = 50

NOTIFIER_BINDINGS = ("#.job.finished", "#.job.abandoned", "#.job.missed")


@dataclass(frozen=True)
class QueueSpec:
    """A durable quorum queue, what it is bound to, and where its dead letters go."""

    name: str
    bindings: tuple[str, ...]
    single_active_consumer: bool = False
    delivery_limit: int = DELIVERY_LIMIT

    @property
    def dead_letter_queue(self) -> str:
        return self.name.removesuffix(".events") + ".dead"

    def arguments(self) -> dict[str, Any]:
        args: dict[str, Any] = {
            "x-queue-type": "quorum",
            "x-delivery-limit": self.delivery_limit,
            # The default exchange routes by queue name, so no extra exchange is needed.
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": self.dead_letter_queue,
        }
        if self.single_active_consumer:
            args["x-single-active-consumer"] = True
        return args


@dataclass(frozen=True)
class Topology:
    """Names of everything on the broker; tests pass their own to stay apart."""

    exchange: str = EXCHANGE_DEFAULT
    ledger_queue: str = LEDGER_QUEUE_DEFAULT
    notifier_queue: str = NOTIFIER_QUEUE_DEFAULT
    commands_queue: str = COMMANDS_QUEUE_DEFAULT
    extra_queues: tuple[QueueSpec, ...] = field(default=())

    @property
    def ledger(self) -> QueueSpec:
        return QueueSpec(self.ledger_queue, ("#",))

    @property
    def notifier(self) -> QueueSpec:
        return QueueSpec(self.notifier_queue, NOTIFIER_BINDINGS)

    @property
    def commands(self) -> QueueSpec:
        # Bound to nothing: commands are published to the default exchange by queue name.
        return QueueSpec(self.commands_queue, (), single_active_consumer=True)

    def queues(self) -> tuple[QueueSpec, ...]:
        return (self.ledger, self.notifier, self.commands, *self.extra_queues)
