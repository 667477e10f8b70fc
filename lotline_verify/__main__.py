"""`lotline-verify DIR [--trusted CHECKPOINT_FILE]`: verify an audit export offline; exit 0 if it holds."""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

from lotline_verify.bundle import verify_bundle
from lotline_verify.export import jobs_argument, verify_export
from lotline_verify.notes import Invalid, Key, parse_vkey


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lotline-verify",
        description="Verify a Lotline audit export without the database or the server: every event's "
        "chain hash and Merkle leaf, the writer key's signature over the chain, each checkpoint's root "
        "and signature, every witness cosignature, and consistency with a checkpoint "
        "you saved earlier. Exit 0 when everything holds, 1 otherwise.",
    )
    p.add_argument("directory", nargs="?", type=Path, help="the export directory (lotline export --out)")
    p.add_argument("--trusted", type=Path, metavar="CHECKPOINT_FILE",
                   help="a checkpoint you saved before (e.g. a witness's): the signed note as text, as "
                   "GET /inspector/checkpoints/latest/note serves it; the log must extend it unchanged")
    p.add_argument("--log-key", action="append", default=[], metavar="VKEY",
                   help="trust only these log keys (name+keyid+base64), not the ones in the export")
    p.add_argument("--writer-key", metavar="VKEY",
                   help="the writer's public key (writer.vkey) you trust; the export's must be this one")
    p.add_argument("--witness-key", action="append", default=[], metavar="VKEY",
                   help="a witness you trust; cosignatures by others are reported as such")
    p.add_argument("--strict", action="store_true",
                   help="also re-encode every event and require its bytes to be in canonical form")
    p.add_argument("--bundle", type=Path, metavar="FILE",
                   help="verify a single-event proof bundle instead (needs --log-key)")
    p.add_argument("--jobs", type=jobs_argument,
                   help="processes that walk a long export side by side (default: the CPU count, at most 4; "
                   "1: this process alone)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        log_keys = [parse_vkey(k) for k in args.log_key] or None
        witness_keys = [parse_vkey(k) for k in args.witness_key] or None
        writer_key = parse_vkey(args.writer_key) if args.writer_key else None
    except Invalid as e:
        print(f"lotline-verify: {e}", file=sys.stderr)
        return 2
    if args.bundle is not None:
        return _bundle(args.bundle, log_keys)
    if args.directory is None:
        build_parser().error("give the export directory")
    try:
        trusted = args.trusted.read_text(encoding="utf-8") if args.trusted else None
    except (OSError, UnicodeDecodeError) as e:
        print(f"lotline-verify: cannot read the trusted checkpoint {args.trusted}: {e}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    progress = None if args.quiet else (lambda n: print(f"  {n} events verified", file=sys.stderr))
    verdict = verify_export(
        args.directory, trusted, log_keys, witness_keys, args.strict, progress, writer_key, args.jobs
    )
    print(verdict.describe())
    if not args.quiet:
        print(f"  ({time.perf_counter() - started:.2f} s, peak memory {_peak_mb():.0f} MB)", file=sys.stderr)
    return 0 if verdict.ok else 1


def _peak_mb() -> float:
    """This process's peak resident memory: VmHWM on Linux (ru_maxrss would count the forking parent)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _bundle(path: Path, log_keys: list[Key] | None) -> int:
    if not log_keys:
        print("lotline-verify: a bundle is checked against the log keys you trust: give --log-key",
              file=sys.stderr)
        return 2
    try:
        print("lotline-verify: OK\n  " + verify_bundle(json.loads(path.read_text()), log_keys))
    except (Invalid, KeyError, ValueError) as e:
        print(f"lotline-verify: FAILED\n  {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
