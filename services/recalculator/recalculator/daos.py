"""The DAO as the recalculator knows it: a reference to score, and a row to import.

Only models live here (the registry's database code is elsewhere). ``DaoRef`` is what a
governance source needs to find a DAO's data; ``DaoRecord`` validates one row of a
``recalculator daos import`` file (JSON list or CSV with header ``id,name,snapshot_space,active``).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

DAO_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
"""A slug: it goes into URLs and log lines, so lowercase, digits and dashes only."""

SNAPSHOT_SPACE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$"
"""A Snapshot space id such as ``uniswap`` or ``aave.eth`` (ENS names, optionally a network
prefix such as ``s:``): no whitespace, no slashes."""

DaoId = Annotated[str, StringConstraints(pattern=DAO_ID_PATTERN)]
DaoName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
SnapshotSpace = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=SNAPSHOT_SPACE_PATTERN)
]


class DaoRef(BaseModel):
    """A DAO to score: its slug, its display name and its Snapshot space."""

    model_config = ConfigDict(frozen=True)

    id: DaoId
    name: DaoName
    snapshot_space: SnapshotSpace


class DaoRecord(BaseModel):
    """One row of a DAO import file; unknown columns are rejected rather than ignored, so a
    typo in a header (``snapshot-space``) is reported instead of importing empty values."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: DaoId
    name: DaoName
    snapshot_space: SnapshotSpace
    active: bool = True

    def to_ref(self) -> DaoRef:
        """Returns the reference a governance source takes for this DAO."""
        return DaoRef(id=self.id, name=self.name, snapshot_space=self.snapshot_space)
