"""The score history: the latest ranking of every DAO, and one DAO's scores across runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg
from rich.table import Table


@dataclass(frozen=True)
class RankedDao:
    rank: int
    dao_id: str
    name: str
    score: float
    computed_at: datetime
    job_id: UUID


@dataclass(frozen=True)
class ScoreEntry:
    computed_at: datetime
    score: float
    job_id: UUID
    trigger: str


async def latest_ranking(pool: asyncpg.Pool) -> list[RankedDao]:
    """Returns every DAO's most recent score, best first (ties by id). A DAO left out of a
    later subset run keeps its earlier score; inactive DAOs are left out."""
    rows = await pool.fetch(
        "SELECT dao_id, name, score, computed_at, job_id FROM ("
        "  SELECT DISTINCT ON (s.dao_id) s.dao_id, d.name, s.score, s.computed_at, s.job_id"
        "  FROM gvs_scores s JOIN daos d ON d.id = s.dao_id WHERE d.active"
        "  ORDER BY s.dao_id, s.computed_at DESC"
        ") latest ORDER BY score DESC, dao_id"
    )
    return [
        RankedDao(
            rank=i,
            dao_id=r["dao_id"],
            name=r["name"],
            score=float(r["score"]),
            computed_at=r["computed_at"],
            job_id=r["job_id"],
        )
        for i, r in enumerate(rows, start=1)
    ]


async def score_history(pool: asyncpg.Pool, dao_id: str) -> list[ScoreEntry]:
    """Returns ``dao_id``'s scores across runs, newest first (empty when it has none)."""
    rows = await pool.fetch(
        "SELECT s.computed_at, s.score, s.job_id, j.trigger FROM gvs_scores s"
        " JOIN jobs j ON j.id = s.job_id WHERE s.dao_id = $1 ORDER BY s.computed_at DESC",
        dao_id,
    )
    return [
        ScoreEntry(
            computed_at=r["computed_at"],
            score=float(r["score"]),
            job_id=r["job_id"],
            trigger=r["trigger"],
        )
        for r in rows
    ]


def ranking_table(ranking: list[RankedDao]) -> Table:
    table = Table(title="GVS ranking (latest score per DAO)")
    for column in ("#", "DAO", "name", "GVS", "computed at (UTC)"):
        table.add_column(column, justify="right" if column in ("#", "GVS") else "left")
    for r in ranking:
        table.add_row(
            str(r.rank), r.dao_id, r.name, f"{r.score:.2f}", f"{r.computed_at:%Y-%m-%d %H:%M}"
        )
    return table


def history_table(dao_id: str, history: list[ScoreEntry]) -> Table:
    table = Table(title=f"GVS history of {dao_id}")
    for column in ("computed at (UTC)", "GVS", "trigger", "job"):
        table.add_column(column, justify="right" if column == "GVS" else "left")
    for h in history:
        table.add_row(f"{h.computed_at:%Y-%m-%d %H:%M}", f"{h.score:.2f}", h.trigger, str(h.job_id))
    return table
