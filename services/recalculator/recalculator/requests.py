"""What a run is asked to do (``RunRequest``), how it ended (``RunOutcome``), and what it
reports as it goes (``Progress``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol
from uuid import UUID

from contracts import JobFinishedPayload
from contracts.events import Trigger
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


@dataclass(frozen=True)
class RunOutcome:
    """How a request ended: ``completed`` or ``failed`` (with JobFinished's payload),
    ``refused`` (another run holds the lock) or ``duplicate`` (this request already ran)."""

    status: Literal["completed", "failed", "refused", "duplicate"]
    job_id: UUID | None = None
    finished: JobFinishedPayload | None = None
    message: str = ""
