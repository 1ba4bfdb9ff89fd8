"""``python -m tests.chaos.mutants NAME SCRIPT ARGS…``: see :mod:`tests.chaos.mutants`."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from tests.chaos.mutants.patches import MUTANTS


def console_script(name: str) -> Callable[[Sequence[str]], int]:
    """The ``main`` of console script ``name`` (as ``[project.scripts]`` maps it)."""
    if name == "recalculator":
        from recalculator.__main__ import main as recalculator_main

        return recalculator_main
    if name == "job-ledger":
        from job_ledger.__main__ import main as ledger_main

        return ledger_main
    if name == "notifier":
        from notifier.__main__ import main as notifier_main

        return lambda argv: notifier_main(list(argv))
    raise SystemExit(f"unknown console script {name!r}")


def main() -> int:
    """Apply the mutant named by the first argument, then run the console script."""
    if len(sys.argv) < 3 or sys.argv[1] not in MUTANTS:
        print(f"usage: python -m tests.chaos.mutants {{{','.join(MUTANTS)}}} SCRIPT ARGS…")
        return 2
    name, script, *argv = sys.argv[1:]
    MUTANTS[name]()
    return console_script(script)(argv)


if __name__ == "__main__":
    sys.exit(main())
