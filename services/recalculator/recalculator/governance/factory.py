"""Builds the governance source that ``GOVERNANCE_SOURCE`` names."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal, get_args

import aiohttp
from pydantic import SecretStr

from recalculator.governance.file import FileSource
from recalculator.governance.pacing import SlidingWindowLimiter, hub_rate_limit
from recalculator.governance.snapshot import DEFAULT_HUB_URL, SnapshotSource
from recalculator.governance.source import GovernanceSource

logger = logging.getLogger(__name__)

SourceKind = Literal["snapshot", "file"]


class SourceSettingError(ValueError):
    """The governance settings do not make a source; the message names the setting at fault."""


def make_source(
    kind: SourceKind,
    *,
    session: aiohttp.ClientSession | None = None,
    hub_url: str = DEFAULT_HUB_URL,
    data_path: Path | None = None,
    timeout_s: float = 20.0,
    api_key: SecretStr | None = None,
    rate_limit: int | None = None,
) -> GovernanceSource:
    """Returns the source for ``kind``: ``snapshot`` needs ``session`` (owned by the caller),
    sends ``api_key`` if given and at most ``rate_limit`` requests a minute (by default the
    hub's limit for keyed or keyless access); ``file`` needs ``data_path`` naming an existing
    file.

    Raises :class:`SourceSettingError` naming the setting at fault for an unknown kind, a
    missing session, or a missing data file, so that a misconfigured service stops at start
    rather than failing every DAO later.
    """
    if kind == "snapshot":
        if session is None:
            raise SourceSettingError("GOVERNANCE_SOURCE=snapshot needs an aiohttp session")
        with_key = api_key is not None and bool(api_key.get_secret_value())
        per_minute = hub_rate_limit(rate_limit, with_key=with_key)
        logger.info(
            "Snapshot hub requests paced at %d a minute, %s an API key",
            per_minute,
            "with" if with_key else "without",
        )
        return SnapshotSource(
            session,
            hub_url=hub_url,
            timeout_s=timeout_s,
            api_key=api_key,
            limiter=SlidingWindowLimiter(per_minute),
        )
    if kind == "file":
        if data_path is None:
            raise SourceSettingError(
                "GOVERNANCE_SOURCE=file needs GOVERNANCE_DATA, the JSON file's path"
            )
        if not data_path.is_file():
            raise SourceSettingError(f"GOVERNANCE_DATA={data_path} is not a file")
        return FileSource(data_path)
    choices = ", ".join(get_args(SourceKind))
    raise SourceSettingError(f"GOVERNANCE_SOURCE={kind!r} is not one of: {choices}")
