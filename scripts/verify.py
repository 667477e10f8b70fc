"""`lotline verify`: everything an inspector checks on the configured store, in one pass over its events:
the hash chain, the writer key's signature over it, the Merkle tree against every signed checkpoint (a
fork), each checkpoint's signature and size (a tail cut off) and every witness cosignature. Exit 0 when
all of it holds, 1 at the first failure (named), 2 when the store is not there."""

from __future__ import annotations

import argparse
import functools
import sys

from ledger.errors import LedgerError
from ledger.store import open_chain
from ledger.transparency import Transparency
from ledger.verify import Helpers
from ledger.writer import read_writer_vkey
from lotline_verify.export import DEFAULT_JOBS, jobs_argument
from scripts.logopts import add_store_options, existing_store_settings


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "verify",
        help="verify the chain, writer signatures, tree, checkpoints and cosignatures of the store",
        description="Recompute every event's hash from genesis, check that the writer key (writer.vkey "
        "in the keys directory) signs the head, that the Merkle tree has the root each signed checkpoint "
        "states (no fork), that no checkpoint covers more events than the store holds (no truncation), and "
        "every checkpoint signature and witness cosignature. Report OK with the count and head hash, or "
        "the first failure and why.",
    )
    add_store_options(p)
    p.add_argument(
        "--jobs",
        type=jobs_argument,
        default=DEFAULT_JOBS,
        help="processes that recompute the hashes side by side on a long chain (default: the CPU count, "
        "at most 4; 1: this process alone)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = existing_store_settings(args)
    writer_key = read_writer_vkey(settings.keys_dir)
    # Read without a writer: verifying never makes a key, and trusts only writer.vkey.
    try:
        with open_chain(settings.database_url) as chain:
            log = Transparency.for_reader(chain, settings)
            try:
                report = log.verify(
                    progress=lambda n: print(f"  {n} events verified", file=sys.stderr),
                    writer_key=writer_key,
                    helpers=Helpers(args.jobs, functools.partial(open_chain, settings.database_url)),
                )
            finally:
                log.close()
    except LedgerError as e:
        print(f"FAILED: {e.message}")
        return 1
    chain = report.chain
    if not report.ok:
        print(chain.describe() if chain is not None and not chain.ok else f"FAILED: {report.problem}")
        return 1
    if chain.count > 0 and writer_key is None:
        print(f"FAILED: {chain.count} events but no writer public key (writer.vkey) in {settings.keys_dir} "
              "to check their signatures against")
        return 1
    print(chain.describe())
    print(f"  {report.checkpoints} checkpoints and {report.cosignatures} cosignatures verified")
    for note in report.notes:
        print(f"  note: {note}")
    return 0
