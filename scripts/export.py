"""`lotline export --out DIR [--from SEQ --to SEQ]`: write the audit export for `lotline-verify`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ledger.errors import LedgerError
from ledger.export import write_export
from ledger.transparency import Transparency
from scripts.logopts import add_store_options, existing_store_settings


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("export", help="write the audit export (events, checkpoints, cosignatures, keys)",
                       description="Write events in canonical form with the chain hashes, every checkpoint "
                       "covering them, their cosignatures and the log's public keys into a new directory "
                       "(format: docs/export-format.md). Check it with `lotline-verify DIR`.")
    p.add_argument("--out", type=Path, required=True, help="a new or empty directory")
    p.add_argument("--from", dest="first", type=int, default=1, metavar="SEQ", help="first event (default 1)")
    p.add_argument("--to", dest="last", type=int, metavar="SEQ", help="last event (default: the newest)")
    p.add_argument("--checkpoint", action="store_true",
                   help="sign a checkpoint of the current head first, so every exported event is covered")
    add_store_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = existing_store_settings(args)
    try:
        log = Transparency.open(settings)
    except LedgerError as e:
        print(f"lotline export: {e.message}", file=sys.stderr)
        return 1
    try:
        if args.checkpoint:
            print(f"checkpoint {log.checkpoint().size} signed", file=sys.stderr)
        summary = write_export(log, args.out, args.first, args.last,
                               progress=lambda n: print(f"  {n} events written", file=sys.stderr))
    except LedgerError as e:
        print(f"lotline export: {e.message}", file=sys.stderr)
        return 1
    finally:
        log.close()
    print(f"exported events {summary.first_seq}..{summary.last_seq}, {summary.checkpoints} checkpoints, "
          f"{summary.cosignatures} cosignatures and {summary.keys} keys to {summary.directory}")
    return 0
