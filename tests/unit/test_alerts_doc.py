"""``docs/alerts.md`` is the truth table the end-to-end test plays, rendered, never edited."""

from __future__ import annotations

from tests.alerts.__main__ import DOC
from tests.alerts.scenarios import SCENARIOS, render_markdown


def test_the_alerts_document_is_the_rendered_scenario_table() -> None:
    assert DOC.read_text(encoding="utf-8") == render_markdown(), "run: make alerts-doc"


def test_every_scenario_names_only_steps_it_has() -> None:
    for scenario in SCENARIOS:
        labels = {s.label for s in (*scenario.before_ledger, *scenario.steps)}
        assert {a.step for a in scenario.alerts} <= labels, scenario.name
        assert set(scenario.shown) <= labels, scenario.name


def test_scenario_names_are_unique() -> None:
    assert len({s.slug for s in SCENARIOS}) == len(SCENARIOS)
