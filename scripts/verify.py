"""`lotline verify`: walk the configured store's hash chain; exit 0 when intact, 1 at the first bad event."""

from __future__ import annotations

import argparse
import sys

from ledger.application import Ledger
from ledger.verify import verify_chain
from scripts.db import existing_store


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "verify",
        help="verify the hash chain of the configured store",
        description="Recompute every event's hash from genesis and report OK with the "
        "count and head hash, or the first event that fails and why.",
    )
    p.add_argument("--database-url", help="override LOTLINE_DATABASE_URL")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    ledger = Ledger.open(existing_store(args.database_url))
    try:
        report = verify_chain(
            ledger.chain, progress=lambda n: print(f"  {n} events verified", file=sys.stderr)
        )
    finally:
        ledger.close()
    print(report.describe())
    return 0 if report.ok else 1
