"""The `lotline` command: one entry point, one module per subcommand (each has `register(sub)`).

Only `db upgrade`, `demo` and `serve` may make a store; every other command refuses one that does not
exist or whose schema is not current, and says which command to run (exit 2).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ledger.schema import StoreNotReady
from projections.runner import ReadModelsNotReady

# Each module defines `register(subparsers)`, which adds its subcommand and sets `func(args) -> int`.
SUBCOMMANDS = [
    "scripts.db",
    "scripts.demo",
    "scripts.verify",
    "scripts.serve",
    "scripts.project",
    "scripts.keys",
    "scripts.checkpoint",
    "scripts.export",
    "scripts.witness",
    "scripts.users",
    "scripts.audit",
    "scripts.epcis",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lotline",
        description="Lotline: a hash-chained traceability ledger for clinical-trial supply. "
        "The store is chosen by LOTLINE_DATABASE_URL (default sqlite:///lotline.db); "
        "`lotline db upgrade` makes it.",
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
    if not args.verbose:  # which dialect it assumes; `lotline.schema` logs each revision applied
        logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except (StoreNotReady, ReadModelsNotReady) as e:
        print(f"lotline {args.command}: {e.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
