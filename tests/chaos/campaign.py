"""The reliability campaign: each scenario an async function that builds its own stack, causes
its fault, waits for the stack to settle, and returns its :class:`Row` of figures.

``SCENARIOS`` lists them in the issue's order; :func:`run_campaign` runs a selection one after
the other (each on fresh names, so one scenario's leftovers cannot hide another's loss) and
never lets an exception escape: a scenario that raises is a failed row with the reason.

Every random choice of a scenario (kill points, shuffles, junk bytes) comes from
``Context.random``, seeded with ``Context.seed`` and the scenario's name: the same seed
replays the same choices, whether the campaign runs whole or ``--only`` that scenario.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tests.chaos.dataset import write_dataset
from tests.chaos.faults import ensure_broker_up, ensure_postgres_up
from tests.chaos.figures import Row
from tests.chaos.names import Service, StackOptions
from tests.chaos.stack import Stack
from tests.cluster.harness import RabbitCluster, running_cluster

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scale:
    """How hard each scenario pushes."""

    name: str
    big_daos: int
    """DAOs of the long runs (consumer crashes, broker and database restarts, load)."""
    mid_daos: int
    """DAOs of the other runs."""
    kills: int
    broker_restarts: int
    broker_down_s: float
    poison: int
    load_s: float
    load_rate: int
    st_examples: int
    """schemathesis examples per API operation."""


SCALES = {
    "full": Scale("full", 20_000, 2_000, 12, 5, 10.0, 1_000, 60.0, 200, 300),
    "small": Scale("small", 600, 300, 4, 1, 3.0, 200, 10.0, 200, 25),
}


def new_seed() -> int:
    """A fresh seed for a campaign that was given none."""
    return random.SystemRandom().randrange(1, 2**31)


@dataclass
class Context:
    """What every scenario gets: the scale, a work folder, where the services are, and the
    seeded source of its random choices."""

    scale: Scale
    work: Path
    database_url: str
    amqp_url: str
    seed: int = field(default_factory=new_seed)
    random: random.Random = field(default_factory=random.Random)
    mutants: dict[Service, str] = field(default_factory=dict)
    """Services to run under a test-only wrapper that breaks one guarantee
    (:mod:`tests.chaos.mutants`), by service; empty for the real build."""
    cluster: RabbitCluster | None = None
    """The three-node RabbitMQ cluster of the cluster scenarios: the one given (a test
    session's), or one :meth:`rabbit_cluster` starts on first use and :meth:`close` removes."""
    _datasets: dict[int, tuple[Path, Path]] = field(default_factory=dict)
    _owned: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    async def rabbit_cluster(self) -> RabbitCluster:
        """The cluster, started (about 15 s) if none was given. Raises ``ClusterUnavailable``
        on a machine that cannot run extra nodes."""
        if self.cluster is None:
            self.cluster = await asyncio.to_thread(self._owned.enter_context, running_cluster())
        return self.cluster

    def close(self) -> None:
        """Remove what the campaign started for itself (the cluster). Idempotent."""
        self._owned.close()

    def dataset(self, daos: int) -> tuple[Path, Path]:
        """The registry and governance files of ``daos`` DAOs, written once per campaign."""
        if daos not in self._datasets:
            folder = self.work / f"dataset-{daos}"
            folder.mkdir(parents=True, exist_ok=True)
            self._datasets[daos] = write_dataset(folder, daos)
        return self._datasets[daos]

    def stack(self, daos: int, options: StackOptions | None = None) -> Stack:
        """A stack of ``daos`` DAOs, its services under :attr:`mutants`' wrappers if any."""
        options = options or StackOptions()
        options.mutants = {**self.mutants, **options.mutants}
        return Stack(self.work, self.database_url, self.amqp_url, self.dataset(daos), options)

    def via(self, url: str, port: int) -> str:
        """``url`` with its host and port replaced by a loopback proxy's."""
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@127.0.0.1:{port}" if userinfo else f"127.0.0.1:{port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def target(self, url: str) -> tuple[str, int]:
        parts = urlsplit(url)
        default = 5672 if parts.scheme.startswith("amqp") else 5432
        return parts.hostname or "127.0.0.1", parts.port or default


Scenario = Callable[[Context], Awaitable[Row]]


def scenarios() -> dict[str, Scenario]:
    """Every scenario by its short name, in the issue's order."""
    from tests.chaos import cluster, crashes, http, inputs, instances, windows

    return {
        "consumer-crashes": crashes.consumer_crashes,
        "producer-crash": crashes.producer_crash,
        "broker-restart": crashes.broker_restart,
        "network-faults": crashes.network_faults,
        "cold-start": crashes.cold_start,
        "in-flight": windows.work_in_flight,
        "database-restart": crashes.database_restart,
        "duplicates": inputs.duplicates_and_reordering,
        "poison": inputs.poison_messages,
        "providers": inputs.failing_providers,
        "hostile-http": http.hostile_http,
        "load": http.sustained_load,
        "node-kill": cluster.connected_node_killed,
        "leader-kill": cluster.leader_node_killed,
        "rolling-restart": cluster.rolling_restart,
        "node-cut-off": cluster.node_cut_off,
        "standby-worker": instances.standby_worker,
        "two-crons": instances.two_crons,
    }


CLUSTER_SCENARIOS = ["node-kill", "leader-kill", "rolling-restart", "node-cut-off"]
"""The scenarios on the three-node cluster (the others run on ``AMQP_URL``'s broker)."""


async def run_scenario(name: str, scenario: Scenario, context: Context) -> Row:
    """Run one scenario; returns its row (a failed one, with the reason, if it raised)."""
    started = time.monotonic()
    context.random = random.Random(f"{context.seed}/{name}")
    try:
        row = await scenario(context)
    except Exception as exc:  # recorded in the row: the campaign goes on and fails at the end
        log.error("scenario %s raised:\n%s", name, traceback.format_exc())
        row = Row(name)
        row.problems.append(f"raised {type(exc).__name__}: {' '.join(str(exc).split())[:400]}")
    finally:
        # A scenario that stopped a shared service must never leave it down.
        await ensure_broker_up()
        await ensure_postgres_up()
    row.seconds = time.monotonic() - started
    return row


async def run_campaign(
    context: Context,
    only: list[str] | None = None,
    on_row: Callable[[Row], None] | None = None,
) -> list[Row]:
    """Run the selected scenarios (all by default) in order; returns their rows."""
    known = scenarios()
    unknown = sorted(set(only or []) - set(known))
    if unknown:
        raise ValueError(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(known)}")
    rows = []
    for name, scenario in known.items():
        if only and name not in only:
            continue
        row = await run_scenario(name, scenario, context)
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows
