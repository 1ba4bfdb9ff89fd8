"""What several stages start the same way: the ledger's environment and process, and the
folder their subprocesses log to."""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
from pathlib import Path

from bench.common import Endpoints, ServiceProcess, log_directory, service_env
from contracts.topology import Topology

ADMIN_PASSWORD = "bench-password"
SESSION_SECRET = "bench-session-secret"


def stage_logs(log_dir: Path | None) -> AbstractContextManager[Path]:
    """``log_dir`` as given, or this run's fresh log folder when it is None."""
    return log_directory() if log_dir is None else contextlib.nullcontext(log_dir)


def ledger_env(
    endpoints: Endpoints, topology: Topology, ledger_schema: str, **values: str
) -> dict[str, str]:
    """The environment of a ``job-ledger serve`` on ``ledger_schema`` with the bench's admin
    password and session secret (``values`` are added, as in ``service_env``)."""
    return service_env(
        endpoints,
        topology,
        ledger_schema=ledger_schema,
        admin_password=ADMIN_PASSWORD,
        session_secret=SESSION_SECRET,
        **values,
    )


def ledger_server(name: str, port: int, env: dict[str, str], logs: Path) -> ServiceProcess:
    """A ``job-ledger serve`` (not yet started) on 127.0.0.1:``port``."""
    argv = ["job-ledger", "serve", "--host", "127.0.0.1", "--port", str(port)]
    return ServiceProcess(name, argv, env, logs)
