"""What a chaos stack names in Postgres and RabbitMQ, and what a scenario changes in it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Literal

from contracts.topology import BrokerNames
from tests.harness.scratch import topology_named

Service = Literal["ledger", "notifier", "worker", "cron"]
"""A program of the stack; ``cron`` runs only when a scenario asks for it (``instances``)."""

SCRIPTS: dict[Service, list[str]] = {
    "ledger": ["job-ledger", "serve"],
    "notifier": ["notifier", "serve"],
    "worker": ["recalculator", "worker"],
    "cron": ["recalculator", "cron"],
}
"""The console script and subcommand each service runs as."""


def instance_names(service: Service, count: int) -> list[str]:
    """The process names of ``count`` instances of ``service``: ``ledger``, ``ledger-2``…"""
    return [service if n == 1 else f"{service}-{n}" for n in range(1, count + 1)]


def service_of(instance: str) -> Service:
    """The service an instance name (:func:`instance_names`) belongs to."""
    name = instance.split("-", 1)[0]
    for service in SCRIPTS:
        if service == name:
            return service
    raise KeyError(instance)


@dataclass(frozen=True)
class Names:
    """Everything a stack names in Postgres and RabbitMQ."""

    run_id: str

    @classmethod
    def fresh(cls) -> Names:
        return cls(uuid.uuid4().hex[:10])

    @property
    def recalc_schema(self) -> str:
        return f"chaos_{self.run_id}_recalc"

    @property
    def ledger_schema(self) -> str:
        return f"chaos_{self.run_id}_ledger"

    @property
    def notifier_schema(self) -> str:
        return f"chaos_{self.run_id}_notifier"

    @property
    def topology(self) -> BrokerNames:
        return topology_named(f"chaos.{self.run_id}")


@dataclass
class StackOptions:
    """What a scenario changes in the stack: link URLs per service and extra settings."""

    database_urls: dict[Service, str] = field(default_factory=dict)
    amqp_urls: dict[Service, str] = field(default_factory=dict)
    env: dict[Service, dict[str, str]] = field(default_factory=dict)
    mutants: dict[Service, str] = field(default_factory=dict)
    """A service named here runs as ``python -m tests.chaos.mutants NAME <its script>``."""
    instances: dict[Service, int] = field(default_factory=dict)
    """How many processes of each service run (1 of each but ``cron``, none, by default);
    instances share the service's schemas, queues and settings, each with a health port."""

    def count(self, service: Service) -> int:
        return self.instances.get(service, 0 if service == "cron" else 1)
