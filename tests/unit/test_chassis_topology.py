"""The topology a service declares: the contract's names made into the chassis's queues."""

from __future__ import annotations

import pytest

from chassis.topology import Topology
from contracts.topology import NOTIFIER_BINDINGS, BrokerNames
from job_ledger.config import Settings as LedgerSettings
from notifier.config import Settings as NotifierSettings
from recalculator.config import Settings as RecalcSettings


def test_every_service_declares_the_same_whole_topology(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EVENTS_EXCHANGE", "LEDGER_QUEUE", "NOTIFIER_QUEUE", "COMMANDS_QUEUE"):
        monkeypatch.delenv(name, raising=False)
    # A quorum queue re-declared with other arguments is refused, so all three must agree.
    topologies = {cls().topology for cls in (LedgerSettings, NotifierSettings, RecalcSettings)}
    assert topologies == {Topology.of(BrokerNames())}


def test_the_default_queues_are_quorum_queues_that_dead_letter_by_name() -> None:
    topology = Topology.of(BrokerNames())
    assert topology.exchange == "jobs.events"
    ledger = topology.queue("job-ledger.events")
    assert ledger.bindings == ("#",)
    assert ledger.arguments() == {
        "x-queue-type": "quorum",
        "x-delivery-limit": 50,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "job-ledger.dead",
    }
    assert topology.queue("notifier.events").bindings == NOTIFIER_BINDINGS


def test_only_the_commands_queue_is_read_by_one_consumer_at_a_time() -> None:
    topology = Topology.of(BrokerNames())
    single = [q.name for q in topology.queues if q.arguments().get("x-single-active-consumer")]
    assert single == ["recalculator.commands"]
    assert topology.queue("recalculator.commands").bindings == ()


def test_a_queue_the_topology_does_not_hold_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="no queue 'elsewhere.events'"):
        Topology.of(BrokerNames()).queue("elsewhere.events")
