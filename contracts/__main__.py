"""``python -m contracts asyncapi [--check]``: regenerate (or check) contracts/asyncapi.yaml."""

from __future__ import annotations

import argparse
import sys

from contracts.asyncapi import ASYNCAPI_PATH, render, write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m contracts")
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("asyncapi", help="write contracts/asyncapi.yaml from the models")
    gen.add_argument("--check", action="store_true", help="exit 1 if the file is out of date")
    args = parser.parse_args(argv)
    if args.check:
        current = ASYNCAPI_PATH.read_text(encoding="utf-8") if ASYNCAPI_PATH.exists() else ""
        if current != render():
            print(f"{ASYNCAPI_PATH} is out of date: run python -m contracts asyncapi")
            return 1
        print(f"{ASYNCAPI_PATH} is up to date")
        return 0
    print(f"wrote {write()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
