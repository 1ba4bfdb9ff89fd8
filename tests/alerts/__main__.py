"""``python -m tests.alerts``: rewrite ``docs/alerts.md`` from the scenario table."""

from __future__ import annotations

from pathlib import Path

from tests.alerts.scenarios import render_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "alerts.md"

if __name__ == "__main__":
    DOC.write_text(render_markdown(), encoding="utf-8")
    print(f"wrote {DOC}")
