"""What a chaos stack names in Postgres and RabbitMQ, and what a scenario changes in it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Literal

from contracts.topology import BrokerNames
from tests.harness.scratch import topology_named

Service = Literal["ledger", "notifier", "worker"]


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
