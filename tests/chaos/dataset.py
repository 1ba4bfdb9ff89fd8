"""The campaign's data: a DAO registry and a governance file that matches it."""

from __future__ import annotations

import json
from pathlib import Path


def write_dataset(folder: Path, daos: int, missing_every: int = 100) -> tuple[Path, Path]:
    """Write ``daos.json`` and ``governance.json``; every ``missing_every``-th DAO has no
    governance data, so a run has real per-DAO failures (1 %: the run still completes).
    Returns both paths. Overwrites."""
    registry = [
        {"id": f"dao-{i:05d}", "name": f"Chaos DAO {i}", "snapshot_space": f"chaos{i}.eth"}
        for i in range(daos)
    ]
    proposals = [
        {
            "id": f"0x{n}",
            "created": f"2025-05-{10 + n:02d}T12:00:00Z",
            "end": f"2025-05-{15 + n:02d}T12:00:00Z",
            "state": "closed",
            "votes": 40 + n,
            "scores_total": 1000.0,
            "choices": ["For", "Against"],
            "scores": [700.0, 300.0],
        }
        for n in range(2)
    ]
    governance = {
        "as_of": "2025-06-02T00:00:00Z",
        "daos": {
            d["id"]: {"followers_count": 500, "proposals": proposals}
            for i, d in enumerate(registry)
            if (i + 1) % missing_every
        },
    }
    daos_path, governance_path = folder / "daos.json", folder / "governance.json"
    daos_path.write_text(json.dumps(registry))
    governance_path.write_text(json.dumps(governance))
    return daos_path, governance_path
