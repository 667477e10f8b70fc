"""`lotline keys generate|list|rotate`: the log's Ed25519 checkpoint-signing keys.

Private keys are files in LOTLINE_KEYS_DIR (mode 0600); public keys are also kept in the store with
their validity period, so checkpoints signed by a retired key still verify after a rotation.
"""

from __future__ import annotations

import argparse
import sys

from ledger.db import open_engine
from ledger.errors import LedgerError
from ledger.keys import KeyRing, LogKey
from ledger.transparency import log_origin
from ledger.writer import WRITER_VKEY_FILE, read_writer_vkey
from scripts.logopts import add_store_options, existing_store_settings


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("keys", help="generate, list and rotate the checkpoint-signing keys",
                       description="Manage the log's Ed25519 signing keys. The private key files live in "
                       "LOTLINE_KEYS_DIR; public keys and validity periods in the store.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, help_text in (
        ("generate", "create the first signing key (refuses if one is active)"),
        ("list", "show every key with its key ID, validity and verifier key (vkey), and the writer key"),
        ("rotate", "retire the active key and start signing with a new one"),
    ):
        a = actions.add_parser(name, help=help_text, description=help_text)
        add_store_options(a)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = existing_store_settings(args)
    engine = open_engine(settings.database_url)
    try:
        ring = KeyRing(engine, settings.keys_dir, log_origin(engine, settings))
        if args.action == "generate":
            _show(ring.generate(), "generated")
        elif args.action == "rotate":
            retired, new = ring.rotate()
            if retired is not None:
                _show(retired, "retired")
            _show(new, "active")
        else:
            keys = ring.all()
            if not keys:
                print("no keys yet: run `lotline keys generate`")
            for key in keys:
                _show(key, "active" if key.valid_until is None else "retired")
            writer = read_writer_vkey(settings.keys_dir)
            if writer is not None:  # give it to inspectors: `lotline-verify --writer-key VKEY`
                print(f"writer    {writer.key_id.hex()}  signs every commit ({WRITER_VKEY_FILE})\n"
                      f"          {writer.encode()}")
    except LedgerError as e:
        print(f"lotline keys: {e.message}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    return 0


def _show(key: LogKey, state: str) -> None:
    until = key.valid_until or "-"
    print(f"{state:9} {key.key_id}  {key.valid_from} .. {until}\n          {key.vkey}")
