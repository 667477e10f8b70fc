"""`lotline verify`: walk the configured store's hash chain and check the writer's signature over it;
exit 0 when intact, 1 at the first bad or unsigned event."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ledger.application import Ledger
from ledger.config import Settings
from ledger.store import store_env
from ledger.verify import verify_chain
from ledger.writer import read_writer_vkey
from scripts.db import existing_store


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "verify",
        help="verify the hash chain and the writer signatures of the configured store",
        description="Recompute every event's hash from genesis, check that the writer key signs the "
        "head, and report OK with the count and head hash, or the first event that fails and why.",
    )
    p.add_argument("--database-url", help="override LOTLINE_DATABASE_URL")
    p.add_argument("--keys-dir", type=Path, help="override LOTLINE_KEYS_DIR (holds writer.vkey)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    url = existing_store(args.database_url)
    settings = Settings(**({"keys_dir": args.keys_dir} if getattr(args, "keys_dir", None) else {}))
    writer_key = read_writer_vkey(settings.keys_dir)
    # Opened without a writer: verifying never makes a key, and trusts only writer.vkey.
    ledger = Ledger(env=store_env(url))
    try:
        report = verify_chain(
            ledger.chain,
            progress=lambda n: print(f"  {n} events verified", file=sys.stderr),
            writer_key=writer_key,
        )
    finally:
        ledger.close()
    if report.ok and report.count > 0 and writer_key is None:
        print(f"FAILED: {report.count} events but no writer public key (writer.vkey) in {settings.keys_dir} "
              "to check their signatures against")
        return 1
    print(report.describe())
    return 0 if report.ok else 1
