"""Where governance data comes from: the Snapshot hub, or a JSON file for offline runs."""

from recalculator.governance.factory import SourceKind, SourceSettingError, make_source
from recalculator.governance.file import FileSource
from recalculator.governance.pacing import RequestsPerMinute, SlidingWindowLimiter
from recalculator.governance.snapshot import DEFAULT_HUB_URL, SnapshotSource
from recalculator.governance.source import (
    GovernanceSource,
    PermanentSourceError,
    SourceError,
    TransientSourceError,
    fetch_deadline,
)

__all__ = [
    "DEFAULT_HUB_URL",
    "FileSource",
    "GovernanceSource",
    "PermanentSourceError",
    "RequestsPerMinute",
    "SlidingWindowLimiter",
    "SnapshotSource",
    "SourceError",
    "SourceKind",
    "SourceSettingError",
    "TransientSourceError",
    "fetch_deadline",
    "make_source",
]
