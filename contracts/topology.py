"""The broker's public names: the exchange, and where each built-in subscriber listens.

| fact                      | default                 | bound to                          |
|---------------------------|-------------------------|-----------------------------------|
| events exchange (topic)   | `jobs.events`           | routing key `<scope>.<kind>`      |
| job-ledger's queue        | `job-ledger.events`     | `#` (every event)                 |
| notifier's queue          | `notifier.events`       | finished, abandoned, missed jobs  |
| recalculator's commands   | `recalculator.commands` | nothing: sent by queue name       |

How a queue is made on the broker (its type, limits, dead letters) is not part of the contract.
"""

from __future__ import annotations

from dataclasses import dataclass

EXCHANGE_DEFAULT = "jobs.events"
LEDGER_QUEUE_DEFAULT = "job-ledger.events"
NOTIFIER_QUEUE_DEFAULT = "notifier.events"
COMMANDS_QUEUE_DEFAULT = "recalculator.commands"

LEDGER_BINDINGS = ("#",)
NOTIFIER_BINDINGS = ("#.job.finished", "#.job.abandoned", "#.job.missed")
# Commands are published to the default exchange by queue name, so the queue binds nothing.
COMMANDS_BINDINGS: tuple[str, ...] = ()


@dataclass(frozen=True)
class Subscription:
    """A queue a built-in subscriber reads, the routing keys it binds, and whether one consumer
    at a time reads it (run requests are taken in order by a single worker)."""

    queue: str
    bindings: tuple[str, ...]
    single_consumer: bool = False


@dataclass(frozen=True)
class BrokerNames:
    """The names of the exchange and of the built-in subscribers' queues; tests pass their own."""

    exchange: str = EXCHANGE_DEFAULT
    ledger_queue: str = LEDGER_QUEUE_DEFAULT
    notifier_queue: str = NOTIFIER_QUEUE_DEFAULT
    commands_queue: str = COMMANDS_QUEUE_DEFAULT

    @property
    def ledger(self) -> Subscription:
        return Subscription(self.ledger_queue, LEDGER_BINDINGS)

    @property
    def notifier(self) -> Subscription:
        return Subscription(self.notifier_queue, NOTIFIER_BINDINGS)

    @property
    def commands(self) -> Subscription:
        return Subscription(self.commands_queue, COMMANDS_BINDINGS, single_consumer=True)

    def subscriptions(self) -> tuple[Subscription, ...]:
        """Every built-in subscriber's queue: what each service declares at start."""
        return (self.ledger, self.notifier, self.commands)
