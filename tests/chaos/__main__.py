"""``python -m tests.chaos [--scale full|small] [--only NAME ...] [--seed N] [--write-doc PATH]``

Runs the campaign against ``DATABASE_URL`` / ``AMQP_URL`` (the local services by default),
prints its seed first (``--seed`` replays a run's random choices), each row as it lands and
the table at the end, optionally writes the table into the figures section of ``PATH`` (the
figures it replaces move, dated, into the history section), and exits 1 when any scenario
lost, duplicated or failed a check.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from tests.chaos.campaign import SCALES, Context, new_seed, run_campaign, scenarios
from tests.chaos.figures import Row, table
from tests.support.services import LOCAL_AMQP_URL, LOCAL_DATABASE_URL

START, END = "<!-- figures:start -->", "<!-- figures:end -->"
HISTORY = "<!-- history:start -->"


def write_doc(
    path: Path, scale: str, seed: int, rows: list[Row], seconds: float, only: list[str] | None
) -> None:
    """Replace the figures section of ``path`` (between the markers) with ``rows``; the
    figures it replaces (their dated headline and table) go, marked as history, to the top of
    the history list (after its marker)."""
    text = path.read_text() if path.exists() else f"# Reliability\n\n{START}\n{END}\n"
    if START not in text or END not in text:
        text += f"\n{START}\n{END}\n"
    head, rest = text.split(START, 1)
    previous, tail = rest.split(END, 1)
    if previous.strip().startswith("Last run:") and HISTORY in tail:
        before, after = tail.split(HISTORY, 1)
        headline, _, figures_then = previous.strip().partition("\n")
        entry = f"- history: {headline.removeprefix('Last run:').strip()} Its table:\n\n"
        tail = f"{before}{HISTORY}\n{entry}{figures_then.strip()}\n{after}"
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = f"python -m tests.chaos --scale {scale} --seed {seed}"
    if only:
        command += " --only " + " ".join(only)
    passed = rows and all(r.passed for r in rows)
    figures = (
        f"Last run: `{command}`, {when}, {os.cpu_count()} cores, "
        f"{seconds / 60:.1f} minutes, "
        f"{'every scenario passed' if passed else 'FAILED'}.\n\n"
        f"{table(rows)}\n"
    )
    path.write_text(f"{head}{START}\n{figures}{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=list(scenarios()))
    parser.add_argument("--seed", type=int, help="replay the random choices of a run")
    parser.add_argument("--write-doc", type=Path, metavar="PATH")
    parser.add_argument("--work", type=Path, help="logs and data files (default: a temp dir)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    work = args.work or Path(tempfile.mkdtemp(prefix="chaos-"))
    seed = new_seed() if args.seed is None else args.seed
    context = Context(
        SCALES[args.scale],
        work,
        os.environ.get("DATABASE_URL", LOCAL_DATABASE_URL),
        os.environ.get("AMQP_URL", LOCAL_AMQP_URL),
        seed,
    )
    print(
        f"chaos campaign, scale {args.scale}, seed {seed} (replay: --seed {seed}); "
        f"service logs in {work}",
        file=sys.stderr,
    )

    def progress(row: Row) -> None:
        print(f"  {row.verdict} {row.scenario} ({row.seconds:.0f}s)", file=sys.stderr)

    try:
        rows, seconds = asyncio.run(_timed(context, args.only, progress))
    finally:
        context.close()
    print(table(rows))
    if args.write_doc:
        write_doc(args.write_doc, args.scale, seed, rows, seconds, args.only)
    sys.exit(0 if rows and all(r.passed for r in rows) else 1)


async def _timed(
    context: Context, only: list[str] | None, progress: object
) -> tuple[list[Row], float]:
    loop = asyncio.get_running_loop()
    began = loop.time()
    rows = await run_campaign(context, only, progress)  # type: ignore[arg-type]
    return rows, loop.time() - began


if __name__ == "__main__":
    main()
