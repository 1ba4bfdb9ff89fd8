"""How the chassis makes a queue, and the topology it declares: given, never chosen here.

| value        | what it is                                                              |
|--------------|-------------------------------------------------------------------------|
| `QueueSpec`  | one durable quorum queue: its bindings, delivery limit and dead letters |
| `Topology`   | an exchange and the queues bound to it, looked up by name               |

A service hands :func:`chassis.broker.declare_topology` the whole topology of the system, built
from the public names and bindings of the event contract; the chassis names no queue itself.
Declaring is idempotent only while :meth:`QueueSpec.arguments` stays the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# A last guard only: consumers reject bad messages themselves at once. It must stay well above
# the number of crash-requeues one message can see (every in-flight message is charged per crash).
DELIVERY_LIMIT = 50


@dataclass(frozen=True)
class QueueSpec:
    """A durable quorum queue, the routing keys it binds, and where its dead letters go."""

    name: str
    bindings: tuple[str, ...]
    single_active_consumer: bool = False
    delivery_limit: int = DELIVERY_LIMIT

    @property
    def dead_letter_queue(self) -> str:
        """The queue its rejected messages go to: ``x.events`` dead-letters to ``x.dead``."""
        return self.name.removesuffix(".events") + ".dead"

    def arguments(self) -> dict[str, Any]:
        """Return the ``x-`` arguments the queue is declared with (the same on every declare)."""
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
    """A topic exchange and the durable queues on the broker; tests pass their own names."""

    exchange: str
    queues: tuple[QueueSpec, ...]

    def queue(self, name: str) -> QueueSpec:
        """Return the queue called ``name``; raises ``KeyError`` if the topology has none."""
        for spec in self.queues:
            if spec.name == name:
                return spec
        raise KeyError(f"no queue {name!r} in the topology of {self.exchange!r}")
