"""Interleaved rounds: the limit and ours measured in turn, several times, then summarised.

On a shared machine a burst of other work lands on one sample, not on a whole side, when the
sides alternate (limit, ours, limit, ours, …). Each side is then read as its median, and the
spread (lowest–highest) is reported beside it so that a reader sees how much the machine swung.
"""

from __future__ import annotations

import statistics
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from bench.common import Figure

T = TypeVar("T")
U = TypeVar("U")

DEFAULT_ROUNDS = 3


@dataclass(frozen=True)
class Spread:
    """Several samples of one figure: the median is the figure, low–high its spread."""

    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        """Raises ``ValueError`` for no samples: a figure needs at least one."""
        if not values:
            raise ValueError("a spread needs at least one sample")
        return cls(tuple(values))

    @property
    def median(self) -> float:
        return float(statistics.median(self.values))

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    def text(self, fmt: str = "{:,.0f}") -> str:
        """``median (low–high, n=3)``, each number formatted with ``fmt``."""
        return (
            f"{fmt.format(self.median)} ({fmt.format(self.low)}–{fmt.format(self.high)},"
            f" n={len(self.values)})"
        )


def spread_note(ours: Spread, limit: Spread | None, fmt: str = "{:,.0f}") -> str:
    """The note beside a figure read as a median: each side's spread over its rounds."""
    rounds = len(ours.values)
    label = "1 round" if rounds == 1 else f"median of {rounds} rounds"
    parts = [f"{label}; ours {fmt.format(ours.low)}–{fmt.format(ours.high)}"]
    if limit is not None:
        parts.append(f"limit {fmt.format(limit.low)}–{fmt.format(limit.high)}")
    return ", ".join(parts)


async def interleaved(
    rounds: int,
    limit: Callable[[int], Awaitable[T]],
    ours: Callable[[int], Awaitable[U]],
) -> tuple[list[T], list[U]]:
    """Run ``limit(i)`` then ``ours(i)`` for each round ``i``; return both sides' samples.

    Raises ``ValueError`` for fewer than one round; any error of a side propagates.
    """
    if rounds < 1:
        raise ValueError("at least one round is needed")
    limits: list[T] = []
    ourses: list[U] = []
    for index in range(rounds):
        limits.append(await limit(index))
        ourses.append(await ours(index))
    return limits, ourses


def spread_figure(
    stage: str,
    metric: str,
    unit: str,
    ours: Spread,
    limit: Spread,
    goal: float | None,
    goal_text: str,
    *,
    higher_is_better: bool = True,
    fmt: str = "{:,.0f}",
) -> Figure:
    """The row for a figure measured over rounds: each side's median, both spreads in its note
    (numbers formatted with ``fmt``)."""
    return Figure(
        stage,
        metric,
        unit,
        ours.median,
        limit.median,
        goal,
        higher_is_better=higher_is_better,
        goal_text=goal_text,
        note=spread_note(ours, limit, fmt),
    )
