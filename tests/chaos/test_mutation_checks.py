"""The campaign catches a build without each guarantee: scenario 3d (work in flight) at small
scale, once per test-only mutant of :mod:`tests.chaos.mutants`, must report the loss or the
duplicate that mutant causes; the real build passes the same scenario in
``test_chaos_small.py``. Select them with ``pytest -k mutation``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.campaign import SCALES, Context, run_scenario, scenarios
from tests.chaos.figures import Row, table
from tests.chaos.names import Service

SCENARIO = "in-flight"


async def run_mutant(
    service: Service, mutant: str, database_url: str, amqp_url: str, work: Path
) -> Row:
    context = Context(SCALES["small"], work, database_url, amqp_url, mutants={service: mutant})
    print(f"seed {context.seed} (python -m tests.chaos --scale small --seed {context.seed})")
    row = await run_scenario(SCENARIO, scenarios()[SCENARIO], context)
    print(table([row]))
    return row


@pytest.mark.chaos
async def test_mutation_a_relay_marking_unconfirmed_rows_sent_is_reported_as_loss(
    database_url: str, amqp_url: str, tmp_path: Path
) -> None:
    row = await run_mutant("worker", "relay-marks-unconfirmed", database_url, amqp_url, tmp_path)
    assert not row.passed, table([row])
    assert row.lost > 0, table([row])


@pytest.mark.chaos
async def test_mutation_b_ledger_acking_before_its_commit_is_reported_as_loss(
    database_url: str, amqp_url: str, tmp_path: Path
) -> None:
    row = await run_mutant("ledger", "ledger-acks-before-commit", database_url, amqp_url, tmp_path)
    assert not row.passed, table([row])
    assert row.lost > 0, table([row])


@pytest.mark.chaos
async def test_mutation_c_notifier_sending_keyless_before_recording_is_reported_as_duplicate(
    database_url: str, amqp_url: str, tmp_path: Path
) -> None:
    row = await run_mutant(
        "notifier", "notifier-sends-before-recording", database_url, amqp_url, tmp_path
    )
    assert not row.passed, table([row])
    assert row.duplicated > 0, table([row])
