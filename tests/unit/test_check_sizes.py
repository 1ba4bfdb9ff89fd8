"""``scripts/check_sizes.py`` passes the product and refuses a module or function too long."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "check_sizes.py"


def _check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_product_module_and_function_is_within_the_limits() -> None:
    result = _check(ROOT)

    assert result.returncode == 0, result.stdout + result.stderr


def test_a_module_over_300_lines_is_refused(tmp_path: Path) -> None:
    (tmp_path / "chassis").mkdir()
    (tmp_path / "chassis" / "long.py").write_text("x = 1\n" * 301)

    result = _check(tmp_path)

    assert result.returncode == 1
    assert "chassis/long.py: 301 lines (limit 300)" in result.stdout


def test_a_function_over_60_lines_is_refused(tmp_path: Path) -> None:
    body = "".join(f"    x{n} = {n}\n" for n in range(60))
    (tmp_path / "services").mkdir()
    (tmp_path / "services" / "long.py").write_text(f"def handle() -> None:\n{body}")

    result = _check(tmp_path)

    assert result.returncode == 1
    assert "handle() is 61 lines (limit 60)" in result.stdout
