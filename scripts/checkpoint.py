"""`lotline checkpoint ...`: sign, list and show checkpoints, store cosignatures, prove events, audit.

`make` signs the current head now (e.g. right after a QA release); `watch` keeps signing by the policy
(LOTLINE_CHECKPOINT_EVERY_EVENTS events or LOTLINE_CHECKPOINT_EVERY_SECONDS seconds); `prove` says when
the next checkpoint is due if none covers the event yet, or signs one first with --sign-now.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from pathlib import Path

from ledger.errors import LedgerError
from ledger.notes import parse_vkey
from ledger.transparency import CheckpointView, NotYetCheckpointed, Transparency
from scripts.logopts import add_store_options, existing_store_settings, settings_from


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("checkpoint", help="sign, list and show checkpoints; proofs; audit the store",
                       description="Signed checkpoints (C2SP tlog-checkpoint) of the ledger's Merkle tree.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = actions.add_parser("make", help="sign a checkpoint of the current head now")
    add_store_options(a)
    a = actions.add_parser("watch", help="sign checkpoints by the policy until interrupted")
    add_store_options(a)
    a = actions.add_parser("list", help="list checkpoints, newest first")
    a.add_argument("--limit", type=int, default=20)
    add_store_options(a, keys=False)
    a = actions.add_parser("show", help="print a checkpoint (default: the newest) with its cosignatures")
    a.add_argument("size", type=int, nargs="?")
    add_store_options(a, keys=False)
    a = actions.add_parser("add-cosignature", help="store a witness's cosignature of one of our checkpoints")
    a.add_argument("file", type=Path, help="the cosigned checkpoint note the witness wrote")
    a.add_argument("--witness-key", required=True, metavar="VKEY", help="the witness's verifier key")
    add_store_options(a, keys=False)
    a = actions.add_parser("prove", help="write the proof bundle of one event (JSON) to stdout")
    a.add_argument("seq", type=int)
    a.add_argument("--size", type=int, help="the checkpoint to prove against (default: the newest)")
    a.add_argument("--sign-now", action="store_true",
                   help="if no checkpoint covers the event yet, sign one of the head first (needs the key)")
    add_store_options(a)
    a = actions.add_parser("audit", help="re-derive chain, tree and checkpoints from the stored events")
    add_store_options(a, keys=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = existing_store_settings(args)
    try:
        log = Transparency.open(settings)
    except LedgerError as e:
        print(f"lotline checkpoint {args.action}: {e.message}", file=sys.stderr)
        return 1
    try:
        return _ACTIONS[args.action](log, args)
    except LedgerError as e:
        print(f"lotline checkpoint {args.action}: {e.message}", file=sys.stderr)
        return 1
    finally:
        log.close()


def _make(log: Transparency, args: argparse.Namespace) -> int:
    view = log.checkpoint()
    print(view.note(), end="")
    return 0


def _watch(log: Transparency, args: argparse.Namespace) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    poll = settings_from(args).checkpoint_poll_seconds
    print(f"signing checkpoints every {log.every_events} events or {log.every_seconds:g} s "
          f"(polling every {poll:g} s); Ctrl-C stops", file=sys.stderr)
    with contextlib.suppress(KeyboardInterrupt):
        log.watch(stop, poll)
    return 0


def _list(log: Transparency, args: argparse.Namespace) -> int:
    for view in log.list_checkpoints(limit=args.limit):
        _summary(view)
    return 0


def _show(log: Transparency, args: argparse.Namespace) -> int:
    view = log.get(args.size) if args.size is not None else log.latest()
    if view is None:
        print("no checkpoint yet", file=sys.stderr)
        return 1
    print(view.note(), end="")
    return 0


def _add_cosignature(log: Transparency, args: argparse.Namespace) -> int:
    c = log.add_cosignature(args.file.read_text(encoding="utf-8"), parse_vkey(args.witness_key))
    print(f"stored the cosignature by {c.witness} of checkpoint {c.size} (time {c.timestamp})")
    return 0


def _prove(log: Transparency, args: argparse.Namespace) -> int:
    try:
        bundle = log.proof_bundle(args.seq, args.size)
    except NotYetCheckpointed as e:
        if not args.sign_now:
            hint = "; or pass --sign-now" if e.retry_after is not None else ""
            print(f"lotline checkpoint prove: {e.message}{hint}", file=sys.stderr)
            return 1
        made = log.checkpoint()
        print(f"checkpoint {made.size} signed", file=sys.stderr)
        bundle = log.proof_bundle(args.seq, made.size)
    print(json.dumps(bundle, indent=2, ensure_ascii=False))
    return 0


def _audit(log: Transparency, args: argparse.Namespace) -> int:
    report = log.verify(progress=lambda n: print(f"  {n} events verified", file=sys.stderr))
    print(report.describe())
    return 0 if report.ok else 1


def _summary(view: CheckpointView) -> None:
    cp = view.checkpoint
    witnesses = ", ".join(sorted({c.witness for c in view.cosignatures})) or "no cosignature yet"
    print(f"{cp.size:>10}  {cp.created_at}  key {cp.key_id}  {cp.root.hex()[:16]}...  {witnesses}")


_ACTIONS = {
    "make": _make, "watch": _watch, "list": _list, "show": _show,
    "add-cosignature": _add_cosignature, "prove": _prove, "audit": _audit,
}
