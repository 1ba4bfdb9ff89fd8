"""The locked dependencies (requirements.lock, what the image installs) against published
advisories, with pip-audit; says how many packages were really checked.

    python scripts/audit.py [requirements.lock]

Exit 1 when a locked package has a known vulnerability. When the advisory source cannot be
reached, or does not answer for some packages (pip-audit then skips them and would still say
"No known vulnerabilities found"), a WARNING line names how many were not checked and why;
that passes unless ``AUDIT_STRICT=1`` (then exit 1). ``AUDIT_SERVICE`` picks the source
(``pypi``, the default, or ``osv``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def pip_audit(lock: Path, service: str) -> tuple[list[dict[str, Any]] | None, str]:
    """Return pip-audit's dependencies (``None`` when it gave no report) and its stderr."""
    command = [
        str(Path(sys.executable).parent / "pip-audit"),
        "--requirement",
        str(lock),
        "--disable-pip",  # the lock pins and hashes everything: nothing to resolve
        "--vulnerability-service",
        service,
        "--format",
        "json",
        "--progress-spinner",
        "off",
    ]
    # Our own venv's pip-audit on our own lock file: no untrusted input.
    result = subprocess.run(  # noqa: S603
        command, capture_output=True, text=True, timeout=600, check=False
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        return None, result.stderr
    return list(report.get("dependencies", [])), result.stderr


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def verdict(
    dependencies: list[dict[str, Any]], service: str, *, strict: bool
) -> tuple[list[str], int]:
    """The report's lines and the exit code for pip-audit's dependencies (its JSON report)."""
    vulnerable = [d for d in dependencies if d.get("vulns")]
    skipped = [d for d in dependencies if d.get("skip_reason")]
    lines = [
        f"audit: VULNERABLE {dep['name']} {dep['version']}: {vuln['id']}"
        f" (fixed in {', '.join(vuln.get('fix_versions') or []) or 'no release yet'})"
        for dep in vulnerable
        for vuln in dep["vulns"]
    ]
    lines.append(
        f"audit: {len(dependencies) - len(skipped)} of {len(dependencies)} locked packages"
        f" checked against {service}'s advisories: {len(vulnerable)} vulnerable"
    )
    code = 1 if vulnerable else 0
    if skipped:
        lines.append(
            f"audit: WARNING: the advisory source did not answer for {len(skipped)} of"
            f" {len(dependencies)} locked packages; they are NOT checked"
            f" (e.g. {skipped[0]['name']}: {skipped[0]['skip_reason']})"
        )
        if strict:
            code = 1
        else:
            lines.append("audit: WARNING: passing without them (AUDIT_STRICT=1 makes this fail)")
    return lines, code


def main(argv: list[str]) -> int:
    """Audits the lock; returns the exit code (see the module's docstring)."""
    lock = Path(argv[1]) if len(argv) > 1 else ROOT / "requirements.lock"
    service = os.environ.get("AUDIT_SERVICE", "pypi")
    strict = os.environ.get("AUDIT_STRICT") == "1"
    dependencies, stderr = pip_audit(lock, service)
    if dependencies is None:
        print(f"audit: WARNING: the advisory source ({service}) could not be reached:")
        print(f"audit: WARNING:   {last_line(stderr)}")
        print(f"audit: WARNING: NOTHING in {lock.name} was checked for vulnerabilities")
        return 1 if strict else 0
    lines, code = verdict(dependencies, service, strict=strict)
    print("\n".join(lines))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
