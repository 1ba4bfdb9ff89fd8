"""The campaign's cluster scenarios at small scale in ``make test``, on the session's cluster:
a node killed, the queues' leader killed, a rolling restart, a node cut off, each during a run
with two instances of every service; and a build whose connections stay on a lost node is
caught by the first."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.campaign import CLUSTER_SCENARIOS, SCALES, Context, run_scenario, scenarios
from tests.chaos.figures import table
from tests.chaos.names import Service
from tests.cluster.harness import RabbitCluster


def small_context(
    work: Path,
    database_url: str,
    amqp_url: str,
    cluster: RabbitCluster,
    mutants: dict[Service, str] | None = None,
) -> Context:
    context = Context(
        SCALES["small"], work, database_url, amqp_url, mutants=mutants or {}, cluster=cluster
    )
    print(f"seed {context.seed} (python -m tests.chaos --scale small --seed {context.seed})")
    return context


@pytest.mark.chaos
@pytest.mark.parametrize("name", CLUSTER_SCENARIOS)
async def test_the_cluster_scenarios_lose_and_duplicate_nothing(
    name: str, database_url: str, amqp_url: str, rabbit_cluster: RabbitCluster, tmp_path: Path
) -> None:
    context = small_context(tmp_path, database_url, amqp_url, rabbit_cluster)
    row = await run_scenario(name, scenarios()[name], context)
    assert row.passed, f"service logs under {tmp_path}\n{table([row])}"
    assert row.stored > 0 and row.published > 0, table([row])
    assert (row.lost, row.duplicated) == (0, 0)
    assert "every consumer back within" in " ".join(row.notes), table([row])


@pytest.mark.chaos
async def test_mutation_d_ledgers_that_stay_on_a_lost_node_are_reported_not_back(
    database_url: str, amqp_url: str, rabbit_cluster: RabbitCluster, tmp_path: Path
) -> None:
    context = small_context(
        tmp_path, database_url, amqp_url, rabbit_cluster, {"ledger": "stays-on-lost-node"}
    )
    row = await run_scenario("node-kill", scenarios()["node-kill"], context)
    print(table([row]))
    assert not row.passed, table([row])
    assert any("consumers not back within 30s" in p for p in row.problems), table([row])
