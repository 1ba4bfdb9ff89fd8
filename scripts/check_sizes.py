"""Fail when a product module passes 300 lines or a function 60: past that, it is two things.

Product code is ``contracts``, ``chassis`` and ``services``. A module that is declarative data
(a table, a schema) may be listed in ``DATA_MODULES`` with the reason; nothing else is exempt.
Run: ``python scripts/check_sizes.py`` (part of ``make test``); exit 1 lists each offender.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60
PRODUCT_ROOTS = ("contracts", "chassis", "services")
DATA_MODULES: dict[str, str] = {}
"""Path → why it is exempt (declarative data only)."""


def offences(path: Path, root: Path) -> list[str]:
    """Return one line per limit ``path`` exceeds, naming it relative to ``root``."""
    text = path.read_text(encoding="utf-8")
    path = path.relative_to(root)
    found = []
    lines = len(text.splitlines())
    if lines > MAX_MODULE_LINES and str(path) not in DATA_MODULES:
        found.append(f"{path}: {lines} lines (limit {MAX_MODULE_LINES})")
    for node in ast.walk(ast.parse(text, filename=str(path))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            length = (node.end_lineno or node.lineno) - first + 1
            if length > MAX_FUNCTION_LINES:
                found.append(
                    f"{path}:{node.lineno}: {node.name}() is {length} lines "
                    f"(limit {MAX_FUNCTION_LINES})"
                )
    return found


def main(root: Path) -> int:
    problems = [
        line
        for top in PRODUCT_ROOTS
        for path in sorted((root / top).rglob("*.py"))
        for line in offences(path, root)
    ]
    for line in problems:
        print(line)
    if problems:
        print(f"check_sizes: {len(problems)} over the limits", file=sys.stderr)
        return 1
    print("check_sizes: every product module and function is within the limits")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".")))
