"""The broker's public names: the exchange, and where each built-in subscriber listens.

| fact                      | default                 | bound to                          |
|---------------------------|-------------------------|-----------------------------------|
| events exchange (topic)   | `jobs.events`           | routing key `<scope>.<kind>`      |
| job-ledger's queue        | `job-ledger.events`     | `#` (every event)                 |
| notifier's queue          | `notifier.events`       | finished, abandoned, missed jobs  |
| recalculator's commands   | `recalculator.commands` | nothing: sent by queue name       |

How a queue is made on the broker (its type, limits, dead letters) is not part of the contract.
A service's settings inherit :class:`BrokerNameSettings` to read the four names from the
environment (``EVENTS_EXCHANGE``, ``LEDGER_QUEUE``, ``NOTIFIER_QUEUE``, ``COMMANDS_QUEUE``).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

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


class BrokerNameSettings(BaseModel):
    """The broker's names as settings fields, with the defaults above: a service's settings
    class inherits it beside its settings base, which reads each from its environment variable
    (``EVENTS_EXCHANGE``, ``LEDGER_QUEUE``, ``NOTIFIER_QUEUE``, ``COMMANDS_QUEUE``)."""

    events_exchange: str = EXCHANGE_DEFAULT
    ledger_queue: str = LEDGER_QUEUE_DEFAULT
    notifier_queue: str = NOTIFIER_QUEUE_DEFAULT
    commands_queue: str = COMMANDS_QUEUE_DEFAULT

    @property
    def broker_names(self) -> BrokerNames:
        """The exchange and the built-in subscribers' queues, as configured."""
        return BrokerNames(
            self.events_exchange, self.ledger_queue, self.notifier_queue, self.commands_queue
        )
