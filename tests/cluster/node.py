"""One extra RabbitMQ node on this machine: its own name, ports, data, logs and config files.

A node runs ``rabbitmq-server`` in the foreground as a child of the test process, in a process
group of its own, so it can be crashed (SIGKILL of the Erlang VM's pid, read from the pid file
the node writes), stopped politely (SIGTERM), started again on the same data, and, whatever
happened, removed with its whole process group by id.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.cluster.cli import RABBITMQ_BIN, as_rabbitmq, base_env, rabbitmq_account

# rabbitmqctl and friends take their own distribution port from this range (the CLI default).
CLI_DIST_PORTS = range(35672, 35683)


def free_port() -> int:
    """A loopback TCP port nobody listens on now, outside the CLI tools' distribution range."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in CLI_DIST_PORTS:
            return port


@dataclass(frozen=True)
class NodeSpec:
    """Where one node lives: ``name`` (``short@localhost``), its ports and its directory."""

    name: str
    amqp_port: int
    dist_port: int
    home: Path

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    @property
    def pid_file(self) -> Path:
        return self.home / "node.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "log" / "node.log"


def write_node_files(spec: NodeSpec) -> None:
    """Create the node's directory with its config, an empty plugin list (no management, no
    prometheus listener) and an empty env file, all owned by the rabbitmq user."""
    for sub in ("", "mnesia", "log", "plugins-expand"):
        (spec.home / sub).mkdir(parents=True, exist_ok=True)
    (spec.home / "rabbitmq.conf").write_text(
        f"listeners.tcp.local = 127.0.0.1:{spec.amqp_port}\n"
        "loopback_users = none\n"
        "log.console = false\n"
        "log.file.level = info\n"
    )
    (spec.home / "enabled_plugins").write_text("[].\n")
    (spec.home / "rabbitmq-env.conf").write_text("")
    account = rabbitmq_account()
    for path in (spec.home, *spec.home.rglob("*")):
        os.chown(path, account.pw_uid, account.pw_gid)


def node_env(spec: NodeSpec) -> dict[str, str]:
    """The environment ``rabbitmq-server`` and the CLI tools need to find this node's files."""
    return {
        **base_env(spec.home / "rabbitmq-env.conf"),
        "RABBITMQ_NODENAME": spec.name,
        "RABBITMQ_NODE_PORT": str(spec.amqp_port),
        "RABBITMQ_DIST_PORT": str(spec.dist_port),
        "RABBITMQ_CONFIG_FILE": str(spec.home / "rabbitmq.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(spec.home / "advanced.config"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(spec.home / "enabled_plugins"),
        "RABBITMQ_PLUGINS_EXPAND_DIR": str(spec.home / "plugins-expand"),
        "RABBITMQ_MNESIA_BASE": str(spec.home / "mnesia"),
        "RABBITMQ_MNESIA_DIR": str(spec.home / "mnesia" / "data"),
        "RABBITMQ_LOG_BASE": str(spec.home / "log"),
        "RABBITMQ_LOGS": str(spec.log_file),
        "RABBITMQ_PID_FILE": str(spec.pid_file),
    }


class NodeProcess:
    """A running (or stopped) node; ``start`` may be called again after ``kill`` or ``stop``."""

    def __init__(self, spec: NodeSpec) -> None:
        self.spec = spec
        self.env = node_env(spec)
        self._wrapper: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def running(self) -> bool:
        return self._wrapper is not None and self._wrapper.poll() is None

    def start(self) -> None:
        """Launch ``rabbitmq-server``; returns at once (see :meth:`wait_until_serving`)."""
        if self.running:
            raise RuntimeError(f"{self.spec.name} is already running")
        self.spec.pid_file.unlink(missing_ok=True)
        self.starts += 1
        with (self.spec.home / "log" / "stdout.log").open("ab") as out:
            self._wrapper = subprocess.Popen(
                [str(RABBITMQ_BIN / "rabbitmq-server")],
                env=self.env,
                cwd=self.spec.home,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **as_rabbitmq(),
            )

    def wait_until_serving(self, timeout_s: float = 60.0) -> None:
        """Return once the node accepts AMQP connections (its last boot step). Raises
        ``AssertionError`` with the log's tail if it exits or is not serving in time."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.running:
                raise AssertionError(f"{self.spec.name} exited:\n{self.log_tail()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.spec.amqp_port), timeout=1),
            ):
                return
            time.sleep(0.2)
        raise AssertionError(f"{self.spec.name} not serving in {timeout_s}s:\n{self.log_tail()}")

    def vm_pid(self) -> int:
        """The Erlang VM's OS pid, from the pid file the node writes early in its boot.
        Raises ``AssertionError`` if the node is not running or has not written it."""
        if not self.running:
            raise AssertionError(f"{self.spec.name} is not running")
        return int(self.spec.pid_file.read_text().strip())

    def kill(self) -> None:
        """SIGKILL the Erlang VM (a crash: nothing flushed, no goodbye to the peers) and reap
        the ``rabbitmq-server`` script around it. Idempotent."""
        if not self.running:
            return
        os.kill(self.vm_pid(), signal.SIGKILL)
        self._reap(timeout_s=15)

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM the Erlang VM, which shuts RabbitMQ down cleanly (queues hand their
        leadership over); SIGKILL the process group if it is not gone in time. Idempotent."""
        if not self.running:
            return
        os.kill(self.vm_pid(), signal.SIGTERM)
        self._reap(timeout_s)

    def remove(self) -> None:
        """SIGKILL the node's whole process group (the script, the VM and its port helpers) by
        its id, whatever state it is in; used at teardown. Idempotent."""
        if self._wrapper is None:
            return
        if self.running and self.spec.pid_file.exists():
            # The VM first, so that the script is still there to reap it.
            self.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._wrapper.pid, signal.SIGKILL)
        self._wrapper.wait(timeout=15)

    def _reap(self, timeout_s: float) -> None:
        assert self._wrapper is not None
        try:
            self._wrapper.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.remove()

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the node's log and of its script's output, for a failure message."""
        parts = []
        for path in (self.spec.log_file, self.spec.home / "log" / "stdout.log"):
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path}\n" + "\n".join(text))
        return "\n".join(parts) or "(no log)"
