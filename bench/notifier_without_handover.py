"""``python -m bench.notifier_without_handover serve …``: the notifier without its hand-over.

The alert latency stage runs it beside the real ``notifier serve`` to see what the consumer's
reserve / hand-over is worth: here :meth:`notifier.intake.Claim.take` reserves no slot, so the
consumer claims no record in its transaction and every record is left pending for the
dispatcher, which the consumer wakes to claim and send them in a transaction of its own.
Bench-only; the product has no such setting.
"""

from __future__ import annotations

import sys

from notifier.__main__ import main
from notifier.intake import Claim


def _take_nothing(self: Claim, count: int) -> int:
    """Reserve no slot: the records stay pending for the dispatcher's own claim."""
    return 0


if __name__ == "__main__":
    Claim.take = _take_nothing  # type: ignore[method-assign]
    sys.exit(main())
