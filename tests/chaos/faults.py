"""Real faults of the machine's RabbitMQ and Postgres, and the guards that undo them.

These act on the shared local services, so every function that stops one has a partner that
makes sure it is up again, and the campaign calls that partner in a ``finally``.
"""

from __future__ import annotations

import asyncio
import logging

from tests.support.postgres import cluster_command

log = logging.getLogger(__name__)


async def command(*argv: str, timeout_s: float = 120) -> tuple[int, str]:
    """Run ``argv``; returns (exit code, stdout and stderr). Kills it after ``timeout_s``."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout_s)
    except TimeoutError:
        process.kill()
        await process.wait()
        return -1, f"{argv[0]} timed out after {timeout_s}s"
    return int(process.returncode or 0), out.decode(errors="replace")


async def stop_broker() -> None:
    """``rabbitmqctl stop_app``: the node stays, the broker stops; raises on failure."""
    code, out = await command("rabbitmqctl", "stop_app")
    if code != 0:
        raise RuntimeError(f"rabbitmqctl stop_app failed: {out}")


async def ensure_broker_up() -> None:
    """``rabbitmqctl start_app``, or ``rabbitmq-server -detached`` when the node itself is
    down; then waits for the broker to be running. Idempotent. Raises when it stays down."""
    code, out = await command("rabbitmqctl", "start_app")
    if code != 0:
        log.warning("start_app failed (%s); starting the node", out.strip().splitlines()[-1:])
        await command("rabbitmq-server", "-detached")
    code, out = await command("rabbitmqctl", "await_startup", "--timeout", "60", timeout_s=90)
    if code != 0:
        raise RuntimeError(f"RabbitMQ did not come back: {out}")


async def queue_consumers(names: set[str]) -> dict[str, int]:
    """Consumers per queue among ``names``, from ``rabbitmqctl list_queues``; a queue the
    broker does not list (or a broker that does not answer) is missing from the result."""
    code, out = await command(
        "rabbitmqctl", "list_queues", "-q", "--no-table-headers", "name", "consumers"
    )
    if code != 0:
        return {}
    found: dict[str, int] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in names and parts[1].isdigit():
            found[parts[0]] = int(parts[1])
    return found


async def restart_postgres() -> None:
    """``pg_ctlcluster restart`` of the local cluster (found by
    :func:`tests.support.postgres.local_cluster`; fast shutdown: every connection is
    dropped). Raises on failure."""
    code, out = await command(*cluster_command("restart"))
    if code != 0:
        raise RuntimeError(f"pg_ctlcluster restart failed: {out}")


async def ensure_postgres_up() -> None:
    """Start the cluster if it is not running. Idempotent. Raises when it stays down."""
    code, _ = await command(*cluster_command("status"))
    if code == 0:
        return
    code, out = await command(*cluster_command("start"))
    if code != 0:
        raise RuntimeError(f"Postgres did not come back: {out}")
