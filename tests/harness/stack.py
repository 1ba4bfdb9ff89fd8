"""One integration test's share of the real services, as the ``stack`` fixture gives it.

A :class:`Stack` holds the test's Postgres schema, its broker names, a robust connection to
RabbitMQ and the loopback ports it reserved, and builds each service's settings or process
environment on them, so a test names what it varies and nothing else::

    async def test_x(stack: Stack, resend: FakeResend) -> None:
        async with running_notifier(stack.notifier_settings(resend=resend)):
            ...
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from aio_pika.abc import AbstractRobustConnection

from contracts.topology import BrokerNames
from notifier.config import Settings as NotifierSettings
from recalculator.config import Settings as RecalcSettings
from tests.harness.ports import ReservedPort
from tests.harness.scratch import service_env
from tests.support.ledger import ledger_env
from tests.support.notifier_harness import notifier_settings
from tests.support.recalc import recalc_env, recalc_settings


@dataclass
class Stack:
    """The test's schema and broker names on the suite's Postgres and RabbitMQ (both removed
    after the test), a connection to the broker, and ports held until the test ends."""

    database_url: str
    amqp_url: str
    schema: str
    topology: BrokerNames
    amqp: AbstractRobustConnection
    _ports: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, repr=False)

    def port(self) -> int:
        """A loopback port reserved for a server this test starts (see ``ReservedPort``)."""
        return self._ports.enter_context(ReservedPort()).port

    def release_ports(self) -> None:
        """Let every reserved port go (the fixture does at the end of the test)."""
        self._ports.close()

    def env(self, **values: str) -> dict[str, str]:
        """The variables every service reads to find this test's services and broker names;
        ``values`` are added with upper-cased names."""
        return service_env(self.database_url, self.amqp_url, self.topology, **values)

    def ledger_env(self) -> dict[str, str]:
        """A ``job-ledger`` process's environment on this test's schema (JSON logs at INFO)."""
        return ledger_env(self.database_url, self.amqp_url, self.schema, self.topology)

    def recalc_env(self) -> dict[str, str]:
        """A ``recalculator`` process's environment on this test's schema (the sample file's
        governance data, JSON logs at INFO)."""
        return recalc_env(self.database_url, self.amqp_url, self.schema, self.topology)

    def notifier_settings(self, **options: Any) -> NotifierSettings:
        """The notifier's settings on this test's schema (``notifier_settings``' options)."""
        return notifier_settings(
            self.database_url, self.amqp_url, self.schema, self.topology, **options
        )

    def recalc_settings(self, **overrides: Any) -> RecalcSettings:
        """The recalculator's settings on this test's schema (``recalc_settings``' overrides)."""
        return recalc_settings(
            self.database_url, self.amqp_url, self.schema, self.topology, **overrides
        )
