"""The small campaign inside ``make test``: the proxy- and process-based scenarios at small
scale (no real broker or Postgres restart, which would disturb every other test running on
the machine; ``make chaos`` does those). Each scenario is one test with its table row."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.campaign import SCALES, Context, run_scenario, scenarios
from tests.chaos.figures import table

SMALL = [
    "consumer-crashes",
    "producer-crash",
    "network-faults",
    "in-flight",
    "duplicates",
    "poison",
    "providers",
    "standby-worker",
    "two-crons",
]


@pytest.mark.chaos
@pytest.mark.parametrize("name", SMALL)
async def test_the_small_campaign_loses_and_duplicates_nothing(
    name: str, database_url: str, amqp_url: str, tmp_path: Path
) -> None:
    context = Context(SCALES["small"], tmp_path, database_url, amqp_url)
    print(f"seed {context.seed} (python -m tests.chaos --scale small --seed {context.seed})")
    row = await run_scenario(name, scenarios()[name], context)
    assert row.passed, f"service logs under {tmp_path}\n{table([row])}"
    assert row.stored > 0 and row.published > 0, table([row])
    assert (row.lost, row.duplicated) == (0, 0)
