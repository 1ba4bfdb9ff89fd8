"""What a run is asked to do (``RunRequest``), how it ended (``RunOutcome``), and what it
reports as it goes (``Progress``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol
from uuid import UUID

from contracts import JobFinishedPayload
from contracts.events import Scope, Trigger
from recalculator.daos import DaoRef


class Progress(Protocol):
    """What a run reports as it goes (a progress bar, a log, metrics)."""

    def started(self, job_id: UUID, total: int) -> None: ...

    def dao_done(self, dao: DaoRef, ok: bool) -> None: ...


class SilentProgress:
    def started(self, job_id: UUID, total: int) -> None:
        return None

    def dao_done(self, dao: DaoRef, ok: bool) -> None:
        return None


@dataclass(frozen=True)
class RunRequest:
    """One run to do: all active DAOs (``dao_ids`` None) or exactly those named."""

    job_name: str
    trigger: Trigger = "manual"
    dao_ids: tuple[str, ...] | None = None
    request_id: UUID | None = None

    @property
    def scope(self) -> Scope:
        """``all`` for every active DAO, ``subset`` for DAOs chosen by id (a retry, say)."""
        return scope_of(self.dao_ids)


def scope_of(dao_ids: object | None) -> Scope:
    """What a run of ``dao_ids`` covers: ``all`` when None, else ``subset``. Pure."""
    return "all" if dao_ids is None else "subset"


@dataclass(frozen=True)
class RunOutcome:
    """How a request ended: ``completed`` or ``failed`` (with JobFinished's payload),
    ``refused`` (nothing started; ``message`` says why: a run of the job is already going, or
    DAO ids unknown or inactive) or ``duplicate`` (this request already ran)."""

    status: Literal["completed", "failed", "refused", "duplicate"]
    job_id: UUID | None = None
    finished: JobFinishedPayload | None = None
    message: str = ""
