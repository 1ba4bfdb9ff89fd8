"""The machine's Postgres cluster restarted under a running service, for the outage tests.

They need the local cluster (``pg_ctlcluster``), not a container; a test that restarts it
ends with :func:`ensure_postgres_started`, so that a failure half-way does not leave the rest
of the suite without a database.
"""

from __future__ import annotations

import subprocess

_CLUSTER = ["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main"]


def restart_postgres() -> None:
    """Restart the cluster; raises ``CalledProcessError`` if it does not come back."""
    subprocess.run([*_CLUSTER, "restart"], check=True, capture_output=True, timeout=60)


def ensure_postgres_started() -> None:
    """Start the cluster unless it already answers on 127.0.0.1."""
    if subprocess.run(["pg_isready", "-h", "127.0.0.1"], capture_output=True).returncode == 0:
        return
    subprocess.run([*_CLUSTER, "start"], capture_output=True, timeout=60)
