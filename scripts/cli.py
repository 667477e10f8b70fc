"""The `lotline` command: one entry point, one module per subcommand (each has `register(sub)`)."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# Each module defines `register(subparsers)`, which adds its subcommand and sets `func(args) -> int`.
SUBCOMMANDS = [
    "scripts.demo",
    "scripts.verify",
    "scripts.serve",
    "scripts.project",
    "scripts.keys",
    "scripts.checkpoint",
    "scripts.export",
    "scripts.witness",
    "scripts.users",
    "scripts.epcis",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lotline",
        description="Lotline: a hash-chained traceability ledger for clinical-trial supply. "
        "The store is chosen by LOTLINE_DATABASE_URL (default sqlite:///lotline.db).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug output")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
