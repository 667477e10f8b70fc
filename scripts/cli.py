"""The `lotline` command: one entry point, one module per subcommand (each has `register(sub)`).

Only `db upgrade`, `demo` and `serve` may make a store; every other command refuses one that does not
exist or whose schema is not current, and says which command to run (exit 2).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ledger.errors import NotReady

# Each module defines `register(subparsers)`, which adds the subcommand named as the module and sets
# `func(args) -> int`.
SUBCOMMANDS = {
    name: f"scripts.{name}"
    for name in (
        "db", "demo", "verify", "serve", "project", "keys", "checkpoint", "export", "witness", "users",
        "audit", "epcis",
    )
}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line; for `argv` naming a subcommand, that subcommand alone: each module
    imports what its command runs (the application, the read models, alembic: ~1 s in all), which a
    command that needs none of it (`lotline verify`) should not wait for."""
    parser = argparse.ArgumentParser(
        prog="lotline",
        description="Lotline: a hash-chained traceability ledger for clinical-trial supply. "
        "The store is chosen by LOTLINE_DATABASE_URL (default sqlite:///lotline.db); "
        "`lotline db upgrade` makes it.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug output")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    named = next((a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")), None)
    for name in [named] if named in SUBCOMMANDS else SUBCOMMANDS:
        importlib.import_module(SUBCOMMANDS[name]).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser(argv).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if not args.verbose:  # which dialect it assumes; `lotline.schema` logs each revision applied
        logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except NotReady as e:
        print(f"lotline {args.command}: {e.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
