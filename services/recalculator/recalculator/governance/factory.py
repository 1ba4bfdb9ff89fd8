"""Builds the governance source that ``GOVERNANCE_SOURCE`` names."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

import aiohttp

from recalculator.governance.file import FileSource
from recalculator.governance.snapshot import DEFAULT_HUB_URL, SnapshotSource
from recalculator.governance.source import GovernanceSource

SourceKind = Literal["snapshot", "file"]


def make_source(
    kind: SourceKind,
    *,
    session: aiohttp.ClientSession | None = None,
    hub_url: str = DEFAULT_HUB_URL,
    data_path: Path | None = None,
    timeout_s: float = 20.0,
) -> GovernanceSource:
    """Returns the source for ``kind``: ``snapshot`` needs ``session`` (owned by the caller),
    ``file`` needs ``data_path`` naming an existing file.

    Raises ``ValueError`` naming the setting at fault for an unknown kind, a missing session,
    or a missing data file, so that a misconfigured service stops at start rather than failing
    every DAO later.
    """
    if kind == "snapshot":
        if session is None:
            raise ValueError("GOVERNANCE_SOURCE=snapshot needs an aiohttp session")
        return SnapshotSource(session, hub_url=hub_url, timeout_s=timeout_s)
    if kind == "file":
        if data_path is None:
            raise ValueError("GOVERNANCE_SOURCE=file needs GOVERNANCE_DATA, the JSON file's path")
        if not data_path.is_file():
            raise ValueError(f"GOVERNANCE_DATA={data_path} is not a file")
        return FileSource(data_path)
    choices = ", ".join(get_args(SourceKind))
    raise ValueError(f"GOVERNANCE_SOURCE={kind!r} is not one of: {choices}")
