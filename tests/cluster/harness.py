"""A RabbitMQ cluster of extra nodes on this machine, beside the default broker, for tests.

``running_cluster()`` starts the nodes (in parallel), joins every node to the first with
``rabbitmqctl stop_app / join_cluster / start_app``, and on the way out, whatever happened,
kills each node's process group by id and removes its files. The default broker is never
touched: the nodes have names, ports and files of their own and share only epmd and the
rabbitmq user's Erlang cookie with it.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.cluster.cli import rabbitmq_account, run_cli, run_cli_json
from tests.cluster.link_proxies import LinkProxies
from tests.cluster.node import NodeProcess, NodeSpec, free_port, write_node_files


@dataclass(frozen=True)
class QueueReplicas:
    """Where a quorum queue lives: its ``leader`` node ('' during an election), its Raft
    ``members`` and the members ``online`` now, as the cluster reports them."""

    leader: str
    members: tuple[str, ...]
    online: tuple[str, ...]


class RabbitCluster:
    """Nodes ``<prefix>-1@localhost`` ... each with direct and proxied AMQP URLs; methods to
    read cluster and queue state and to crash, stop, start and cut off one node by name."""

    def __init__(self, root: Path, size: int = 3) -> None:
        prefix = f"csj-{uuid.uuid4().hex[:6]}"
        self.root = root
        self.nodes = tuple(
            NodeProcess(
                NodeSpec(f"{prefix}-{i}@localhost", free_port(), free_port(), root / f"n{i}")
            )
            for i in range(1, size + 1)
        )
        self._by_name = {node.spec.name: node for node in self.nodes}
        self._proxies = LinkProxies()
        self._proxy_ports = {n.spec.name: self._proxies.open(n.spec.amqp_port) for n in self.nodes}
        self.timings: dict[str, float] = {}
        self._vm_pids: set[int] = set()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._by_name)

    @property
    def amqp_urls(self) -> tuple[str, ...]:
        """One direct URL per node, in node order."""
        return tuple(node.spec.amqp_url for node in self.nodes)

    @property
    def proxied_urls(self) -> tuple[str, ...]:
        """One URL per node through that node's fault proxy (see :meth:`cut_off`)."""
        return tuple(
            f"amqp://guest:guest@127.0.0.1:{self._proxy_ports[name]}/" for name in self.names
        )

    def url(self, name: str, proxied: bool = False) -> str:
        """The AMQP URL of node ``name``, direct or through its fault proxy."""
        urls = self.proxied_urls if proxied else self.amqp_urls
        return urls[self.names.index(name)]

    def start(self) -> None:
        """Start every node, wait until each serves AMQP, then join the others to the first.
        Records ``start_s`` and ``join_s`` in :attr:`timings`. Raises ``AssertionError`` (with
        the node's log) or ``CliFailed`` when a node does not come up or join."""
        began = time.monotonic()
        for node in self.nodes:
            write_node_files(node.spec)
            node.start()
        for node in self.nodes:
            node.wait_until_serving()
            self._vm_pids.add(node.vm_pid())
        self.timings["start_s"] = time.monotonic() - began
        began = time.monotonic()
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(self._join_first, self.nodes[1:]))
        self.timings["join_s"] = time.monotonic() - began

    def _join_first(self, node: NodeProcess) -> None:
        first = self.nodes[0].spec.name
        for args in (["stop_app"], ["join_cluster", first], ["start_app"]):
            run_cli("rabbitmqctl", node.spec.name, args, node.env)

    def ctl(self, args: list[str], tool: str = "rabbitmqctl") -> str:
        """Run a RabbitMQ CLI tool against the first running node; returns its stdout."""
        node = self._a_running_node()
        return run_cli(tool, node.spec.name, args, node.env)

    def ctl_json(self, args: list[str], tool: str = "rabbitmqctl") -> Any:
        """:meth:`ctl` with ``--formatter json``; returns the parsed document."""
        node = self._a_running_node()
        return run_cli_json(tool, node.spec.name, args, node.env)

    def running_nodes(self) -> list[str]:
        """The nodes ``cluster_status`` reports running, sorted."""
        return sorted(self.ctl_json(["cluster_status"])["running_nodes"])

    def replicas(self, queue: str, vhost: str = "/") -> QueueReplicas:
        """Leader and members of quorum queue ``queue``. Raises ``KeyError`` if it is unknown."""
        rows = self.ctl_json(["list_queues", "-p", vhost, "name", "leader", "members", "online"])
        for row in rows:
            if row["name"] == queue:
                return QueueReplicas(row["leader"], tuple(row["members"]), tuple(row["online"]))
        raise KeyError(queue)

    def leader_of(self, queue: str, vhost: str = "/", timeout_s: float = 30.0) -> str:
        """The node leading quorum queue ``queue``, once one that is online leads it (waits out
        an election). Raises ``TimeoutError`` if none does within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            replicas = self.replicas(queue, vhost)
            if replicas.leader in replicas.online and self._by_name[replicas.leader].running:
                return replicas.leader
            time.sleep(0.5)
        raise TimeoutError(f"no online leader for {queue} in {timeout_s}s")

    def vm_pid(self, name: str) -> int:
        """The OS pid of node ``name``'s Erlang VM."""
        return self._by_name[name].vm_pid()

    def kill(self, name: str) -> None:
        """SIGKILL node ``name``'s Erlang VM by pid, as a crash. Idempotent."""
        self._by_name[name].kill()

    def stop(self, name: str) -> None:
        """Shut node ``name`` down cleanly (SIGTERM to its VM's pid). Idempotent."""
        self._by_name[name].stop()

    def start_node(self, name: str) -> None:
        """Start node ``name`` again on its own data; returns once it is back in the cluster."""
        node = self._by_name[name]
        node.start()
        node.wait_until_serving(timeout_s=120)
        self._vm_pids.add(node.vm_pid())

    def restart(self, name: str) -> None:
        """:meth:`stop` then :meth:`start_node`: one step of a rolling restart."""
        self.stop(name)
        self.start_node(name)

    def cut_off(self, name: str) -> None:
        """Drop every client link made through node ``name``'s proxy and refuse new ones (the
        node itself stays up and clustered) until :meth:`restore`."""
        self._proxies.cut(self._by_name[name].spec.amqp_port)

    def restore(self, name: str) -> None:
        """Let clients reach node ``name`` through its proxy again. Idempotent."""
        self._proxies.restore(self._by_name[name].spec.amqp_port)

    def heal(self) -> None:
        """Bring the cluster back to its starting shape: every proxy restored, every stopped
        node started again; a no-op on a healthy cluster."""
        for node in self.nodes:
            self.restore(node.spec.name)
            if not node.running:
                self.start_node(node.spec.name)

    def close(self) -> None:
        """Kill every node's process group by id, close the proxies, remove every file.
        Raises ``AssertionError`` if a VM this cluster ever started is still alive."""
        for node in self.nodes:
            node.remove()
        self._proxies.close()
        shutil.rmtree(self.root, ignore_errors=True)
        deadline = time.monotonic() + 15
        while (alive := [pid for pid in self._vm_pids if process_alive(pid)]) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.2)
        assert not alive, f"cluster VMs still alive after teardown: {alive}"

    def _a_running_node(self) -> NodeProcess:
        for node in self.nodes:
            if node.running:
                return node
        raise AssertionError("no node of the cluster is running")


def process_alive(pid: int) -> bool:
    """True while process ``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@contextlib.contextmanager
def running_cluster(size: int = 3) -> Iterator[RabbitCluster]:
    """Yield a started, joined :class:`RabbitCluster` of ``size`` nodes; tear it down on exit,
    even when the body or the start fails. Raises ``ClusterUnavailable`` on a machine that
    cannot run extra nodes."""
    rabbitmq_account()
    root = Path(tempfile.mkdtemp(prefix="csj-cluster-"))
    root.chmod(0o755)  # the nodes run as the rabbitmq user and must reach their directories
    cluster = RabbitCluster(root, size)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()
