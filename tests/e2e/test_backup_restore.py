"""docs/operations.md's backup and restore, performed on the real database with the real tools.

Runs go through the three services (the worker scoring from a loopback Snapshot hub); the
schemas are dumped with ``pg_dump``, dropped with ``psql``, restored with ``pg_restore``, and
``job-ledger rebuild`` checks the restored projection before the services start again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from contracts.topology import BrokerNames
from tests.harness.scratch import drop_schemas
from tests.support.backups import (
    Schemas,
    System,
    back_up,
    checked,
    drop_schemas_with_psql,
    rebuild,
    restore,
    system_on,
    tool_env,
)
from tests.support.broker import eventually
from tests.support.recalc import hub_spaces, space_of
from tests.support.snapshot_hub import Fault, SnapshotHub


@pytest.fixture
async def hub() -> AsyncIterator[SnapshotHub]:
    async with SnapshotHub(hub_spaces(3), hang_s=8) as served:
        yield served


@pytest.fixture
async def schemas(database_url: str, schema: str) -> AsyncIterator[Schemas]:
    names = Schemas.with_prefix(schema)
    yield names
    await drop_schemas(database_url, *names.in_dump_order())


@pytest.fixture
async def system(
    database_url: str,
    amqp_url: str,
    topology: BrokerNames,
    schemas: Schemas,
    hub: SnapshotHub,
    tmp_path: Path,
) -> AsyncIterator[System]:
    async with system_on(database_url, amqp_url, topology, schemas, hub, tmp_path) as served:
        yield served


async def test_a_restored_backup_answers_exactly_what_the_api_answered_before(
    database_url: str, schemas: Schemas, system: System, tmp_path: Path
) -> None:
    await system.start()
    requests = [(await system.run_job())[0] for _ in range(2)]
    before = await system.answers(requests)
    stats = before["job-stats"]["data"]
    assert (stats["completed"], stats["running"]) == (2, 0)
    dumps = await back_up(database_url, schemas, tmp_path / "backup")
    listing = await checked(["pg_restore", "--list", str(dumps[0])], tool_env())
    assert f" TABLE DATA {schemas.ledger} job_events " in listing
    await system.stop()

    await drop_schemas_with_psql(database_url, schemas)
    await restore(database_url, dumps)
    assert await rebuild(system.env) == (0, "job_logs matches the event store\n", "")
    await system.start()

    assert await system.answers(requests) == before


async def test_a_restore_that_lost_the_event_store_is_caught_by_rebuild(
    database_url: str, schemas: Schemas, system: System, tmp_path: Path
) -> None:
    await system.start()
    request, job = await system.run_job()
    before = await system.answers([request])
    ledger_dump, *other_dumps = await back_up(database_url, schemas, tmp_path / "backup")
    await system.stop()

    await drop_schemas_with_psql(database_url, schemas)
    listing = await checked(["pg_restore", "--list", str(ledger_dump)], tool_env())
    without_events = tmp_path / "without-job-events.list"
    without_events.write_text(
        "\n".join(
            line
            for line in listing.splitlines()
            if "TABLE DATA" not in line or " job_events " not in line
        )
    )
    await restore(database_url, [ledger_dump], use_list=without_events)
    await restore(database_url, other_dumps)
    code, out, _ = await rebuild(system.env)
    assert (code, out) == (
        1,
        f"job {job}: in job_logs but has no events (row deleted)\n"
        "1 job_logs rows differed from the event store; fixed them\n",
    )
    await system.start()

    after = await system.answers([request])
    assert after != before
    assert after["job-logs"]["data"] == []


async def test_after_an_older_backup_later_runs_are_gone_and_a_run_going_is_abandoned(
    database_url: str, schemas: Schemas, system: System, hub: SnapshotHub, tmp_path: Path
) -> None:
    await system.start()
    first_request, first_job = await system.run_job()
    hub.misbehave(space_of(2), Fault.HANG, times=1)  # the run waits 8 s for its third DAO
    going_request = await system.trigger()
    going_job = await system.job_of(going_request)
    await eventually(
        lambda: system.get(f"/api/admin/job-logs?id={going_job}"),
        lambda body: body["data"][0]["daosProcessed"] == 2,
    )
    dumps = await back_up(database_url, schemas, tmp_path / "backup")
    backed_up = await system.answers([first_request])
    finished = await system.settled(going_job)
    assert finished["status"] == "completed"
    later_request, later_job = await system.run_job()
    await system.stop()

    await drop_schemas_with_psql(database_url, schemas)
    await restore(database_url, dumps)
    assert await rebuild(system.env) == (0, "job_logs matches the event store\n", "")
    await system.start(JOB_STALE_AFTER="3s")

    history = (await system.get("/api/admin/job-logs?limit=100"))["data"]
    assert [job["id"] for job in history] == [going_job, first_job]
    assert (
        await system.get(f"/api/admin/job-logs?id={first_job}")
        == backed_up[f"job-logs?id={first_job}"]
    )
    abandoned = await eventually(
        lambda: system.get(f"/api/admin/job-logs?id={going_job}"),
        lambda body: body["data"][0]["outcome"] == "abandoned",
        timeout_s=30,
    )
    row = abandoned["data"][0]
    assert (row["status"], row["daosProcessed"], row["complete"]) == ("failed", 2, False)
    events = (await system.get(f"/api/admin/job-logs/{going_job}/events"))["data"]
    assert [e["eventType"] for e in events][:5] == [
        "JobStarted",
        "DaoProcessed",
        "DaoProcessed",
        "RunAccepted",
        "JobAbandoned",
    ]
    alerted = await eventually(
        lambda: system.get(f"/api/admin/job-logs?id={going_job}"),
        lambda body: any(n["channel"] == "email" for n in body["data"][0]["notifications"]),
    )
    [email] = [n for n in alerted["data"][0]["notifications"] if n["channel"] == "email"]
    assert (email["kind"], email["state"]) == ("abandoned", "sent")
    assert sorted(p.name for p in (tmp_path / "emails").glob(f"{going_job}-*.html")) == [
        f"{going_job}-abandoned.html",
        f"{going_job}-success.html",
    ]
    assert (await system.status_of(f"/api/admin/run-requests/{later_request}")) == 404
    assert (await system.status_of(f"/api/admin/job-logs?id={later_job}")) == 404

    _, next_job = await system.run_job()
    assert (await system.settled(next_job))["status"] == "completed"
