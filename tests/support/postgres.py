"""The machine's Postgres cluster restarted under a running service, for the outage tests.

They need the local cluster (Debian's ``pg_ctlcluster``), not a container. The cluster is
found, not assumed: the one ``pg_lsclusters`` lists on the port the tests use (5432), else
the only cluster under ``/etc/postgresql/<version>/<name>``. A test that restarts it ends
with :func:`ensure_postgres_started`, so that a failure half-way does not leave the rest of
the suite without a database.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

LOCAL_PORT = 5432
CONFIG_ROOT = Path("/etc/postgresql")


class ClusterNotFound(RuntimeError):
    """No single local cluster serves the tests' port."""


def clusters_listed(listing: str, port: int) -> list[tuple[str, str]]:
    """The (version, name) of each ``pg_lsclusters --no-header`` line on ``port``."""
    found = []
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == str(port):
            found.append((fields[0], fields[1]))
    return found


@functools.cache
def local_cluster(port: int = LOCAL_PORT) -> tuple[str, str]:
    """The (version, name) of the cluster serving ``port``. Raises ``ClusterNotFound``."""
    try:
        listing = subprocess.run(
            ["pg_lsclusters", "--no-header"], capture_output=True, text=True, timeout=30
        ).stdout
    except OSError:
        listing = ""
    found = clusters_listed(listing, port)
    if not found and CONFIG_ROOT.is_dir():
        found = [(d.parent.name, d.name) for d in CONFIG_ROOT.glob("*/*") if d.is_dir()]
    if len(found) != 1:
        raise ClusterNotFound(
            f"expected one local Postgres cluster on port {port}, found {found or 'none'}"
            f" (pg_lsclusters, {CONFIG_ROOT})"
        )
    return found[0]


def cluster_command(action: str) -> list[str]:
    """``pg_ctlcluster --skip-systemctl-redirect <version> <name> <action>``."""
    return ["pg_ctlcluster", "--skip-systemctl-redirect", *local_cluster(), action]


def restart_postgres() -> None:
    """Restart the cluster; raises ``CalledProcessError`` if it does not come back."""
    subprocess.run(cluster_command("restart"), check=True, capture_output=True, timeout=60)


def ensure_postgres_started() -> None:
    """Start the cluster unless it already answers on 127.0.0.1."""
    if subprocess.run(["pg_isready", "-h", "127.0.0.1"], capture_output=True).returncode == 0:
        return
    subprocess.run(cluster_command("start"), capture_output=True, timeout=60)
