"""The `recalculator` command line as a subprocess: exit codes, messages, what it writes."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from contracts import JobFinished, JobStarted, parse_event
from recalculator.run_lock import run_lock
from tests.harness.processes import run_command
from tests.harness.stack import Stack
from tests.support.broker import collect, consumer_count, eventually, tap_exchange

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(stack: Stack) -> dict[str, str]:
    return {**stack.recalc_env(), "OUTBOX_DRAIN_TIMEOUT": "10s"}


async def recalculator(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    return await run_command([sys.executable, "-m", "recalculator", *args], env, cwd=REPO)


@pytest.fixture
async def pool(stack: Stack) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(
        stack.database_url, min_size=1, max_size=2, server_settings={"search_path": stack.schema}
    )
    yield pool
    await pool.close()


async def test_an_import_with_one_bad_row_is_rejected_by_line_and_changes_nothing(
    env: dict[str, str], pool: asyncpg.Pool, tmp_path: Path
) -> None:
    good = tmp_path / "daos.csv"
    good.write_text("id,name,snapshot_space,active\naave,Aave,aave.eth,true\n")
    assert (await recalculator(env, "daos", "import", str(good)))[0] == 0

    bad = tmp_path / "more.csv"
    bad.write_text(
        "id,name,snapshot_space,active\n"
        "aave,Aave Renamed,aave.eth,false\n"
        "ens,ENS,ens.eth,true\n"
        "Bad Id,Broken,broken.eth,true\n"
    )
    code, out, err = await recalculator(env, "daos", "import", str(bad))

    assert code == 2
    assert "1 bad row(s), nothing imported" in err
    assert "line 4: id: String should match pattern" in err
    assert "Traceback" not in err
    rows = await pool.fetch("SELECT id, name, active FROM daos ORDER BY id")
    assert [tuple(r) for r in rows] == [("aave", "Aave", True)]


async def test_a_sample_run_scores_eleven_daos_and_reports_compound_failed(
    env: dict[str, str], pool: asyncpg.Pool
) -> None:
    assert (await recalculator(env, "daos", "import", str(REPO / "data/daos.sample.json")))[0] == 0

    code, out, err = await recalculator(env, "run")

    assert code == 0, err
    assert "completed: 11 of 12 DAOs scored, 1 failed" in out
    assert "compound (Compound): no governance data for DAO compound" in out
    assert await pool.fetchval("SELECT count(*) FROM gvs_scores") == 11
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0
    code, out, _ = await recalculator(env, "rankings")
    assert code == 0 and "compound" not in out and "aave" in out


async def test_a_full_run_says_scope_all_and_a_dao_run_says_subset_on_the_exchange(
    stack: Stack, env: dict[str, str]
) -> None:
    tap = await tap_exchange(stack.amqp, stack.topology, "#.job.*")
    assert (await recalculator(env, "daos", "import", str(REPO / "data/daos.sample.json")))[0] == 0

    assert (await recalculator(env, "run"))[0] == 0
    assert (await recalculator(env, "run", "--trigger", "retry", "--dao", "aave", "--dao", "ens"))[
        0
    ] == 0

    events = [parse_event(m.body) for m in await collect(tap, 4)]
    runs = [e.payload for e in events if isinstance(e, JobStarted | JobFinished)]
    assert [(type(p).__name__, p.daos_total, p.scope) for p in runs] == [
        ("JobStartedPayload", 12, "all"),
        ("JobFinishedPayload", 12, "all"),
        ("JobStartedPayload", 2, "subset"),
        ("JobFinishedPayload", 2, "subset"),
    ]


async def test_a_run_of_an_inactive_or_unknown_dao_is_bad_input_and_starts_nothing(
    env: dict[str, str], pool: asyncpg.Pool, tmp_path: Path
) -> None:
    daos = tmp_path / "daos.csv"
    daos.write_text("id,name,snapshot_space,active\naave,Aave,aave.eth,false\n")
    assert (await recalculator(env, "daos", "import", str(daos)))[0] == 0

    code, _, err = await recalculator(env, "run", "--dao", "aave", "--dao", "gone")

    assert code == 2
    assert err.strip().splitlines()[-1] == (
        "recalculator: unknown DAO ids: gone; inactive DAO ids: aave"
    )
    assert await pool.fetchval("SELECT count(*) FROM jobs") == 0


async def test_a_run_while_another_holds_the_lock_exits_3_and_writes_nothing(
    env: dict[str, str], pool: asyncpg.Pool
) -> None:
    assert (await recalculator(env, "migrate"))[0] == 0
    async with run_lock(pool, "weekly-gvs-recalculation") as held:
        assert held
        code, out, err = await recalculator(env, "run")

    assert code == 3, err
    assert "refused: a run of weekly-gvs-recalculation is already going" in out
    assert await pool.fetchval("SELECT count(*) FROM jobs") == 0
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("JOB_SCHEDULE", "every monday", "JOB_SCHEDULE: Value error, 'every monday' is not a cron"),
        ("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/test", "cannot connect to Postgres"),
        ("AMQP_URL", "amqp://guest:secret-pw@127.0.0.1:1/", "cannot connect to RabbitMQ"),
    ],
)
async def test_a_setup_error_is_one_clear_line_and_exit_code_2(
    env: dict[str, str], variable: str, value: str, says: str
) -> None:
    code, _, err = await recalculator({**env, variable: value}, "run")
    assert code == 2
    # The last line is ours (aiormq may log its connection attempt as a JSON line before it).
    last = err.strip().splitlines()[-1]
    assert last.startswith("recalculator: ") and says in last
    assert "Traceback" not in err
    assert "secret-pw" not in err


async def test_the_worker_stops_cleanly_on_sigterm(stack: Stack, env: dict[str, str]) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "recalculator",
        "worker",
        env={**env, "HEALTH_PORT": "0", "HEALTH_HOST": "127.0.0.1"},
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await eventually(
            lambda: consumer_count(stack.amqp, stack.topology.commands_queue),
            lambda n: n == 1,
            timeout_s=30,
        )
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()
    assert "SIGTERM received" in err.decode()
    assert await consumer_count(stack.amqp, stack.topology.commands_queue) == 0


async def test_an_import_if_empty_seeds_an_empty_registry_and_never_touches_a_filled_one(
    env: dict[str, str], pool: asyncpg.Pool, tmp_path: Path
) -> None:
    first = tmp_path / "daos.csv"
    first.write_text("id,name,snapshot_space,active\naave,Aave,aave.eth,true\n")
    code, out, _ = await recalculator(env, "daos", "import", "--if-empty", str(first))
    assert (code, "1 new" in out) == (0, True)
    await pool.execute("UPDATE daos SET name = 'Aave (production)', active = false")

    again = tmp_path / "sample.csv"
    again.write_text(
        "id,name,snapshot_space,active\naave,Aave,aave.eth,true\nens,ENS,ens.eth,true\n"
    )
    code, out, _ = await recalculator(env, "daos", "import", "--if-empty", str(again))

    assert code == 0
    assert "the registry holds 1 DAOs: nothing imported" in out
    rows = await pool.fetch("SELECT id, name, active FROM daos ORDER BY id")
    assert [tuple(r) for r in rows] == [("aave", "Aave (production)", False)]
