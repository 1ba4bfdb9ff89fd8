"""scripts/audit.py reads pip-audit's JSON report: a vulnerability fails, an unanswered package
is never counted as checked."""

from __future__ import annotations

from scripts.audit import verdict

CLEAN = {"name": "yarl", "version": "1.25.1", "vulns": []}
VULNERABLE = {
    "name": "jinja2",
    "version": "3.1.5",
    "vulns": [{"id": "GHSA-cpwx-vrp4-4pq7", "fix_versions": ["3.1.6"]}],
}
UNANSWERED = {"name": "aiohttp", "skip_reason": "Dependency not found on PyPI"}


def test_a_known_vulnerability_fails_and_is_named() -> None:
    lines, code = verdict([CLEAN, VULNERABLE], "pypi", strict=False)

    assert code == 1
    assert "audit: VULNERABLE jinja2 3.1.5: GHSA-cpwx-vrp4-4pq7 (fixed in 3.1.6)" in lines
    assert "audit: 2 of 2 locked packages checked against pypi's advisories: 1 vulnerable" in lines


def test_packages_the_source_did_not_answer_for_are_a_loud_warning_and_strict_fails() -> None:
    lines, code = verdict([CLEAN, UNANSWERED], "pypi", strict=False)
    _, strict_code = verdict([CLEAN, UNANSWERED], "pypi", strict=True)

    assert (code, strict_code) == (0, 1)
    assert "audit: 1 of 2 locked packages checked against pypi's advisories: 0 vulnerable" in lines
    assert any(
        line.startswith("audit: WARNING: the advisory source did not answer for 1 of 2")
        and "NOT checked" in line
        for line in lines
    )


def test_a_vulnerability_fails_even_when_other_packages_went_unanswered() -> None:
    assert verdict([VULNERABLE, UNANSWERED], "pypi", strict=False)[1] == 1
