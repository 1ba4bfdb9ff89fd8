"""What a benchmark stage is: where the services are, what it measured, and how it runs alone.

Each stage measures the raw limit of its broker, database or server and then our code on the
same work, in the same run, and returns a :class:`StageResult` of :class:`Figure` values.
Beside this module: ``wire`` (synthetic events), ``publishing`` (putting them on the broker),
``memory`` (a process's RSS), ``stage_env`` (scratch names, environments and processes of a
stage, on :mod:`tests.harness`).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from chassis.settings import BaseServiceSettings, load_settings


@dataclass(frozen=True)
class Endpoints:
    """Where Postgres and RabbitMQ are (``DATABASE_URL``, ``AMQP_URL``, as for the services)."""

    database_url: str
    amqp_url: str

    @classmethod
    def from_environment(cls) -> Endpoints:
        """Read through the services' own settings base; raises ``SettingsError``."""
        settings = load_settings(BaseServiceSettings)
        return cls(settings.database_url.get_secret_value(), settings.amqp_url.get_secret_value())


@dataclass(frozen=True)
class Figure:
    """One row of the table: our figure beside the limit measured in the same run.

    ``goal`` is a ratio ours/limit: at least it when ``higher_is_better``, else at most it.
    Without a limit, ``passed`` must be given (an absolute goal such as a memory ceiling).
    """

    stage: str
    metric: str
    unit: str
    ours: float
    limit: float | None
    goal: float | None
    higher_is_better: bool = True
    goal_text: str = ""
    verdict: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.limit is None or self.limit == 0:
            return None
        return self.ours / self.limit

    @property
    def passed(self) -> bool | None:
        if self.verdict is not None:
            return self.verdict
        if self.ratio is None or self.goal is None:
            return None
        return self.ratio >= self.goal if self.higher_is_better else self.ratio <= self.goal


@dataclass
class StageResult:
    """What one stage measured: its figures and details worth printing below the table, or
    the error that stopped it."""

    stage: str
    figures: list[Figure] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    error: str | None = None
    """Why the stage stopped before measuring, when it did (its figures are then missing)."""


def mb(value: float) -> float:
    return value / 1_000_000


def stage_cli(
    doc: str | None,
    run: Callable[..., Coroutine[Any, Any, StageResult]],
    check: Callable[..., None] | None = None,
    **sizes: int,
) -> None:
    """Run one stage from the command line (``python -m bench.<stage> --<size> N …``).

    ``sizes`` are the stage's size arguments with their defaults, passed to ``run`` (and first
    to ``check``, whose ``ValueError`` is a usage error) by name. Prints the stage's details;
    ``python -m bench`` runs every stage and writes the table.
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else "")
    for name, default in sizes.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=default)
    args = vars(parser.parse_args())
    if check is not None:
        try:
            check(**args)
        except ValueError as exc:
            parser.error(str(exc))
    outcome = asyncio.run(run(Endpoints.from_environment(), **args))
    print("\n".join(outcome.details))
