"""Running RabbitMQ's own scripts as the ``rabbitmq`` user, the one that holds the Erlang cookie.

Debian's ``/usr/sbin`` wrappers switch user with ``su`` and point every node at the system
broker's files; the harness calls the scripts under ``/usr/lib/rabbitmq/bin`` directly instead,
with an environment of its own, so nothing it starts reads or writes the default broker's files.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
RABBITMQ_USER = "rabbitmq"


class ClusterUnavailable(RuntimeError):
    """This machine cannot run extra RabbitMQ nodes (no scripts, or no way to become rabbitmq)."""


class CliFailed(RuntimeError):
    """A RabbitMQ command-line tool exited non-zero; the message holds its argv and output."""


def rabbitmq_account() -> pwd.struct_passwd:
    """The ``rabbitmq`` account; raises :class:`ClusterUnavailable` if it or the scripts are
    missing, or if this process can neither be that user nor switch to it (root)."""
    if not (RABBITMQ_BIN / "rabbitmq-server").exists():
        raise ClusterUnavailable(f"no RabbitMQ scripts in {RABBITMQ_BIN}")
    try:
        account = pwd.getpwnam(RABBITMQ_USER)
    except KeyError as missing:
        raise ClusterUnavailable(f"no {RABBITMQ_USER!r} user on this machine") from missing
    if os.geteuid() not in (0, account.pw_uid):
        raise ClusterUnavailable(f"extra RabbitMQ nodes need root or the {RABBITMQ_USER} user")
    if not (Path(account.pw_dir) / ".erlang.cookie").exists():
        raise ClusterUnavailable(f"no Erlang cookie in {account.pw_dir}")
    return account


def as_rabbitmq() -> dict[str, Any]:
    """``subprocess`` keyword arguments that run a child as the ``rabbitmq`` user."""
    account = rabbitmq_account()
    if os.geteuid() == account.pw_uid:
        return {}
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


def base_env(env_file: Path) -> dict[str, str]:
    """What every script run by the harness sees: the rabbitmq user's home (so the shared Erlang
    cookie is found), the harness's own (empty) ``rabbitmq-env.conf`` instead of the system's,
    and epmd and distribution on the loopback only, as the default broker has them."""
    return {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "HOME": rabbitmq_account().pw_dir,
        "LANG": "C.UTF-8",
        "RABBITMQ_CONF_ENV_FILE": str(env_file),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "ERL_FLAGS": "-kernel inet_dist_use_interface {127,0,0,1}",
    }


def run_cli(
    tool: str, node: str, args: list[str], env: Mapping[str, str], timeout_s: float = 60
) -> str:
    """Run ``tool -n node args...`` (``rabbitmqctl``, ``rabbitmq-queues``...) and return its
    stdout. Raises :class:`CliFailed` on a non-zero exit, ``subprocess.TimeoutExpired`` if it
    has not ended within ``timeout_s``."""
    argv = [str(RABBITMQ_BIN / tool), "-n", node, *args]
    done: subprocess.CompletedProcess[str] = subprocess.run(
        argv,
        env=dict(env),
        cwd=rabbitmq_account().pw_dir,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        **as_rabbitmq(),
    )
    if done.returncode != 0:
        raise CliFailed(f"{' '.join(argv)} -> {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done.stdout


def run_cli_json(tool: str, node: str, args: list[str], env: Mapping[str, str]) -> Any:
    """:func:`run_cli` with ``--formatter json``; returns the parsed document."""
    out = run_cli(tool, node, [*args, "--formatter", "json", "--quiet"], env)
    return json.loads(out)
