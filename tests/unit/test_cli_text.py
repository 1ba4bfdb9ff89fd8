"""What the three command lines print about themselves: plain-text help, one migrate line."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import pytest

from chassis.migrations import migration_report
from job_ledger.__main__ import build_parser as ledger_parser
from notifier.__main__ import _parser as notifier_parser
from recalculator.__main__ import parser as recalculator_parser


@pytest.mark.parametrize("build", [ledger_parser, notifier_parser, recalculator_parser])
def test_help_is_plain_text_without_rest_markup(
    build: Callable[[], argparse.ArgumentParser],
) -> None:
    help_text = build().format_help()
    assert "``" not in help_text
    assert build().description


def test_migrate_says_the_schema_is_up_to_date_or_lists_what_it_applied() -> None:
    applied = ["chassis.outbox/0001_outbox.sql", "recalculator/0001_x.sql"]
    assert migration_report("recalc", []) == "recalc: schema up to date"
    assert migration_report("recalc", applied) == (
        "recalc: applied 2 migration(s): chassis.outbox/0001_outbox.sql, recalculator/0001_x.sql"
    )
