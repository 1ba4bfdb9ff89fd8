"""The broker's names: one definition every service's settings read from the same variables."""

from __future__ import annotations

import pytest

from chassis.settings import BaseServiceSettings, load_settings
from contracts.topology import (
    COMMANDS_QUEUE_DEFAULT,
    EXCHANGE_DEFAULT,
    LEDGER_QUEUE_DEFAULT,
    NOTIFIER_QUEUE_DEFAULT,
    BrokerNames,
)
from job_ledger.config import Settings as LedgerSettings
from notifier.config import Settings as NotifierSettings
from recalculator.config import Settings as RecalcSettings

SERVICES: list[type[BaseServiceSettings]] = [LedgerSettings, NotifierSettings, RecalcSettings]
NAME_VARS = ("EVENTS_EXCHANGE", "LEDGER_QUEUE", "NOTIFIER_QUEUE", "COMMANDS_QUEUE")


@pytest.fixture(autouse=True)
def _no_names_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in NAME_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("settings_class", SERVICES)
def test_each_service_reads_the_four_names_from_the_environment(
    settings_class: type[LedgerSettings | NotifierSettings | RecalcSettings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVENTS_EXCHANGE", "t1.events")
    monkeypatch.setenv("LEDGER_QUEUE", "t1-ledger.events")
    monkeypatch.setenv("NOTIFIER_QUEUE", "t1-notifier.events")
    monkeypatch.setenv("COMMANDS_QUEUE", "t1-recalc.commands")

    settings = load_settings(settings_class)

    assert settings.broker_names == BrokerNames(
        "t1.events", "t1-ledger.events", "t1-notifier.events", "t1-recalc.commands"
    )
    topology = settings.topology
    assert topology.exchange == "t1.events"
    assert [q.name for q in topology.queues] == [
        "t1-ledger.events",
        "t1-notifier.events",
        "t1-recalc.commands",
    ]
    assert topology.queue("t1-ledger.events").bindings == ("#",)
    assert topology.queue("t1-recalc.commands").single_active_consumer
    assert topology.queue("t1-notifier.events").dead_letter_queue == "t1-notifier.dead"


@pytest.mark.parametrize("settings_class", SERVICES)
def test_without_the_variables_each_service_uses_the_contract_defaults(
    settings_class: type[LedgerSettings | NotifierSettings | RecalcSettings],
) -> None:
    settings = load_settings(settings_class)

    assert settings.broker_names == BrokerNames(
        EXCHANGE_DEFAULT, LEDGER_QUEUE_DEFAULT, NOTIFIER_QUEUE_DEFAULT, COMMANDS_QUEUE_DEFAULT
    )
    assert settings.broker_names == BrokerNames()
    assert settings.topology.exchange == "jobs.events"


@pytest.mark.parametrize("settings_class", SERVICES)
def test_the_settings_stay_frozen_with_the_names_mixed_in(
    settings_class: type[LedgerSettings | NotifierSettings | RecalcSettings],
) -> None:
    settings = load_settings(settings_class)

    with pytest.raises(ValueError, match="frozen"):
        settings.ledger_queue = "other"  # type: ignore[misc]
