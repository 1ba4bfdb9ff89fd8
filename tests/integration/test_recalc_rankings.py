"""``recalculator rankings --dao``: one DAO's score history from real runs, newest first."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tests.harness.processes import run_command
from tests.harness.stack import Stack

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(stack: Stack) -> dict[str, str]:
    # Wide enough that rich never wraps a job id.
    return {**stack.recalc_env(), "OUTBOX_DRAIN_TIMEOUT": "10s", "COLUMNS": "200"}


async def recalculator(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    return await run_command([sys.executable, "-m", "recalculator", *args], env, cwd=REPO)


@pytest.fixture
async def pool(stack: Stack) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(
        stack.database_url, min_size=1, max_size=2, server_settings={"search_path": stack.schema}
    )
    yield pool
    await pool.close()


def table_rows(out: str) -> list[list[str]]:
    """The body rows of a rich table, cell by cell (title, header and rules left out)."""
    return [
        [cell.strip() for cell in line.strip("│ ").split("│")]
        for line in out.splitlines()
        if line.startswith("│")
    ]


async def test_a_daos_history_lists_each_runs_score_newest_first_with_its_trigger_and_job(
    env: dict[str, str], pool: asyncpg.Pool
) -> None:
    assert (await recalculator(env, "daos", "import", str(REPO / "data/daos.sample.json")))[0] == 0
    assert (await recalculator(env, "run"))[0] == 0
    assert (await recalculator(env, "run", "--trigger", "retry", "--dao", "aave"))[0] == 0
    assert (await recalculator(env, "run", "--dao", "ens"))[0] == 0

    code, out, err = await recalculator(env, "rankings", "--dao", "aave")

    assert code == 0, err
    assert "GVS history of aave" in out
    runs = await pool.fetch(
        "SELECT s.computed_at, s.score, j.trigger, j.id FROM gvs_scores s"
        " JOIN jobs j ON j.id = s.job_id WHERE s.dao_id = 'aave' ORDER BY s.computed_at DESC"
    )
    assert [r["trigger"] for r in runs] == ["retry", "manual"], "two runs scored aave"
    assert table_rows(out) == [
        [f"{r['computed_at']:%Y-%m-%d %H:%M}", f"{r['score']:.2f}", r["trigger"], str(r["id"])]
        for r in runs
    ]


async def test_a_dao_without_scores_says_so_and_exits_0(
    env: dict[str, str], pool: asyncpg.Pool
) -> None:
    assert (await recalculator(env, "daos", "import", str(REPO / "data/daos.sample.json")))[0] == 0
    assert (await recalculator(env, "run"))[0] == 0  # compound has no governance data: failed

    for dao in ("compound", "nobody"):
        code, out, err = await recalculator(env, "rankings", "--dao", dao)
        assert code == 0, err
        assert out.strip() == f"no scores for {dao}"
    assert await pool.fetchval("SELECT count(*) FROM gvs_scores WHERE dao_id = 'compound'") == 0


async def test_a_governance_data_file_that_is_missing_is_a_setting_error_and_exit_2(
    env: dict[str, str],
) -> None:
    assert (await recalculator(env, "daos", "import", str(REPO / "data/daos.sample.json")))[0] == 0

    code, _, err = await recalculator({**env, "GOVERNANCE_DATA": "/nonexistent.json"}, "run")

    assert code == 2
    assert err.strip().splitlines()[-1] == (
        "recalculator: GOVERNANCE_DATA=/nonexistent.json is not a file"
    )
    assert "Traceback" not in err
