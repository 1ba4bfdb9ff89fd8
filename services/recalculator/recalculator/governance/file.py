"""The ``file`` governance source: the same data as the Snapshot source, from a JSON file.

For offline runs and demos (``GOVERNANCE_DATA``). The file looks like::

    {
      "as_of": "2025-06-02T00:00:00Z",
      "daos": {
        "aave": {
          "followers_count": 98000,
          "proposals": [
            {"id": "0xab…", "created": "2025-05-20T14:00:00Z", "end": "2025-05-25T14:00:00Z",
             "state": "closed", "votes": 412, "scores_total": 612000.5,
             "choices": ["For", "Against", "Abstain"], "scores": [600000.5, 12000, 0]}
          ]
        }
      }
    }

keyed by DAO id (the slug, not the Snapshot space). ``followers_count`` is optional.

Time travel: a file written once must still score the same whenever it is run, but the score
only counts the last 90 days. So when ``as_of`` is present, every proposal's ``created`` and
``end`` are moved by ``now - as_of`` at each fetch: the file's ``as_of`` becomes now, a proposal
written 10 days before ``as_of`` is 10 days old, and ``state`` stays true. Without ``as_of``
times are taken as they are (real, absolute data).

The file is read once, in a worker thread so the event loop never blocks, on the first fetch; a
file that cannot be read or parsed fails every fetch with ``PermanentSourceError``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recalculator.daos import DaoId, DaoRef
from recalculator.governance.source import PermanentSourceError
from recalculator.scoring import GovernanceData, Proposal, UtcDatetime


class DaoGovernance(BaseModel):
    """One DAO's entry in the file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    followers_count: int | None = Field(default=None, ge=0)
    proposals: tuple[Proposal, ...] = ()


class GovernanceFile(BaseModel):
    """The whole file: an optional ``as_of`` and the DAOs' entries by DAO id."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    as_of: UtcDatetime | None = None
    daos: dict[DaoId, DaoGovernance]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class FileSource:
    """Serves governance data from ``path``; ``clock`` gives "now" for the ``as_of`` shift."""

    def __init__(self, path: Path, *, clock: Callable[[], datetime] = _utc_now) -> None:
        self._path = path
        self._clock = clock
        self._lock = asyncio.Lock()
        self._file: GovernanceFile | None = None

    async def fetch(self, dao: DaoRef, since: datetime) -> GovernanceData:
        """Returns ``dao``'s proposals created at or after ``since``, times shifted so the
        file's ``as_of`` is now. Raises ``PermanentSourceError`` when the file cannot be read
        or parsed, or has no entry for ``dao``. Read-only."""
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        file = await self._load()
        entry = file.daos.get(dao.id)
        if entry is None:
            raise PermanentSourceError(f"no governance data for DAO {dao.id} in {self._path}")
        shift = self._clock() - file.as_of if file.as_of is not None else timedelta(0)
        proposals = tuple(
            p.model_copy(update={"created": p.created + shift, "end": p.end + shift})
            for p in entry.proposals
            if p.created + shift >= since
        )
        return GovernanceData(
            dao_id=dao.id, proposals=proposals, followers_count=entry.followers_count
        )

    async def _load(self) -> GovernanceFile:
        # The lock makes concurrent first fetches (one per DAO) share one read.
        async with self._lock:
            if self._file is None:
                self._file = await self._read()
            return self._file

    async def _read(self) -> GovernanceFile:
        try:
            raw = await asyncio.to_thread(self._path.read_bytes)
        except OSError as error:
            raise PermanentSourceError(
                f"cannot read governance data file {self._path}: {error.strerror or error}"
            ) from error
        try:
            return GovernanceFile.model_validate_json(raw)
        except ValidationError as error:
            details = "; ".join(
                f"{'.'.join(str(part) for part in item['loc']) or 'file'}: {item['msg']}"
                for item in error.errors()[:5]
            )
            raise PermanentSourceError(
                f"governance data file {self._path} is not valid: {details}"
            ) from error
