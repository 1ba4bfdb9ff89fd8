"""The layering contracts in ``.importlinter`` hold, and they do catch a layer crossed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("contracts", "chassis", "job_ledger", "notifier", "recalculator")


def _lint(cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(ROOT / ".importlinter")],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _fake_project(tmp_path: Path, imports: dict[str, str]) -> Path:
    for package in PACKAGES:
        folder = tmp_path / package
        folder.mkdir()
        (folder / "__init__.py").write_text(imports.get(package, ""))
    return tmp_path


def test_the_project_keeps_every_layering_contract() -> None:
    result = _lint(ROOT)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


def test_a_chassis_that_imports_the_contract_breaks_the_build(tmp_path: Path) -> None:
    project = _fake_project(tmp_path, {"chassis": "import contracts\n"})

    result = _lint(project, pythonpath=project)

    assert result.returncode == 1
    assert "chassis is not allowed to import contracts" in result.stdout


def test_a_service_that_imports_another_breaks_the_build(tmp_path: Path) -> None:
    project = _fake_project(tmp_path, {"notifier": "import job_ledger\n"})

    result = _lint(project, pythonpath=project)

    assert result.returncode == 1
    assert "Services never import each other BROKEN" in result.stdout
