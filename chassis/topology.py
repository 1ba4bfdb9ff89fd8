"""How the chassis makes a queue, and the topology it declares: given, never chosen here.

| value        | what it is                                                              |
|--------------|-------------------------------------------------------------------------|
| `QueueSpec`  | one durable quorum queue: its bindings, delivery limit and dead letters |
| `Subscribed` | what the chassis needs to know of a queue somebody subscribes to        |
| `Subscribers`| an exchange and its subscribed queues, as a contract names them         |
| `Topology`   | an exchange and the queues bound to it, looked up by name               |

A service hands :func:`chassis.broker.declare_topology` the whole topology of the system, built
with :meth:`Topology.of` from the public names and bindings of the event contract; the chassis
names no queue itself. Declaring is idempotent only while :meth:`QueueSpec.arguments` stays the
same.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

# A last guard only: consumers reject bad messages themselves at once. It must stay well above
# the number of crash-requeues one message can see (every in-flight message is charged per crash).
DELIVERY_LIMIT = 50


def dead_letter_queue(queue: str) -> str:
    """Return where ``queue``'s rejected messages go: ``x.events`` dead-letters to ``x.dead``."""
    return queue.removesuffix(".events") + ".dead"


class Subscribed(Protocol):
    """A queue somebody subscribes to, as a contract states it: name, bindings, consumers."""

    @property
    def queue(self) -> str: ...

    @property
    def bindings(self) -> tuple[str, ...]: ...

    @property
    def single_consumer(self) -> bool: ...


class Subscribers(Protocol):
    """An exchange and the queues subscribed to it, as a contract names them."""

    @property
    def exchange(self) -> str: ...

    def subscriptions(self) -> Iterable[Subscribed]: ...


@dataclass(frozen=True)
class QueueSpec:
    """A durable quorum queue, the routing keys it binds, and where its dead letters go."""

    name: str
    bindings: tuple[str, ...]
    single_active_consumer: bool = False
    delivery_limit: int = DELIVERY_LIMIT

    @property
    def dead_letter_queue(self) -> str:
        """The queue its rejected messages go to (see :func:`dead_letter_queue`)."""
        return dead_letter_queue(self.name)

    def arguments(self) -> dict[str, Any]:
        """Return the ``x-`` arguments the queue is declared with (the same on every declare).

        No ``x-quorum-initial-group-size``: RabbitMQ then gives a quorum queue a replica on
        every node of a cluster (all nodes on 3.x; ``quorum_cluster_size``, 3 by default, on
        4.x) and one on a single node; and a queue that exists without an argument refuses a
        redeclare with it (``PRECONDITION_FAILED``), so adding one would stop every service
        on a broker that already holds the queues.
        """
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

    @classmethod
    def of(cls, subscribers: Subscribers) -> Topology:
        """Return the topology that makes each subscribed queue the chassis's way."""
        queues = tuple(
            QueueSpec(s.queue, s.bindings, single_active_consumer=s.single_consumer)
            for s in subscribers.subscriptions()
        )
        return cls(subscribers.exchange, queues)

    def queue(self, name: str) -> QueueSpec:
        """Return the queue called ``name``; raises ``KeyError`` if the topology has none."""
        for spec in self.queues:
            if spec.name == name:
                return spec
        raise KeyError(f"no queue {name!r} in the topology of {self.exchange!r}")
