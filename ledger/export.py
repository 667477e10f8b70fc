"""The audit export: events in canonical form, checkpoints, cosignatures and public keys, in one directory.

Written a page of events at a time (memory stays flat), in the layout docs/export-format.md specifies,
for `lotline-verify` or any third-party verifier. `manifest.json` is written last, so a directory
without it is an interrupted export.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from ledger.chain import GENESIS_HASH, encode_event
from ledger.errors import InvalidInput, LedgerError
from ledger.transparency import Transparency

FORMAT = "lotline-audit-export/1"
FILES = ("events.jsonl", "checkpoints.jsonl", "cosignatures.jsonl", "keys.jsonl", "writer_signatures.jsonl")


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """What an export holds: the event range, and how many checkpoints, cosignatures and keys."""

    directory: Path
    first_seq: int
    last_seq: int
    checkpoints: int
    cosignatures: int
    keys: int


def event_line(seq: int, stream: str, version: int, chain_hash: bytes, canonical: bytes) -> bytes:
    """One line of events.jsonl: a fixed header, then the canonical bytes verbatim as `event`."""
    return b'{"seq":%d,"stream":"%s","version":%d,"chain_hash":"%s","event":%s}\n' % (
        seq,
        stream.encode(),
        version,
        chain_hash.hex().encode(),
        canonical,
    )


def write_export(
    log: Transparency,
    out: Path,
    first: int = 1,
    last: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ExportSummary:
    """Write events `first`..`last` (default: all) with every checkpoint that covers them to `out`."""
    size = log.sync()
    last = size if last is None else last
    if not 1 <= first <= last + 1 or last > size:
        raise InvalidInput(f"the log holds events 1..{size}; cannot export {first}..{last}", field="from")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise InvalidInput(f"{out} is not empty; export into a new directory", field="out")
    out.mkdir(parents=True, exist_ok=True)
    prev = _chain_hash(log, first - 1)
    with _open(out / "events.jsonl") as f:
        _write_events(log, f, first, last, prev, progress)
    cover = log.checkpoints.first_at_or_above(last)
    if cover is not None and cover.size == last:
        cover = None
    with _open(out / "checkpoints.jsonl") as f:
        checkpoints = _write_checkpoints(log, f, last, cover)
    with _open(out / "cosignatures.jsonl") as f:
        cosignatures = _write_cosignatures(log, f, checkpoints)
    with _open(out / "keys.jsonl") as f:
        keys = _write_keys(log, f)
    with _open(out / "writer_signatures.jsonl") as f:
        _write_writer_signatures(log, f, first, last)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "origin": log.origin,
        "first_seq": first,
        "last_seq": last,
        "prev_chain_hash": prev.hex(),
        "frontier": [_b64(h) for h in log.tree.frontier(first - 1).hashes()],
        "cover": None
        if cover is None
        else {"size": cover.size, "proof": [_b64(h) for h in log.tree.consistency_proof(last, cover.size)]},
        "created_at": datetime.now(UTC).isoformat(),
        "writer_key": None if log.reader.writer is None else log.reader.writer.verifier.encode(),
        "files": list(FILES),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return ExportSummary(out, first, last, len(checkpoints), cosignatures, keys)


def _write_events(
    log: Transparency,
    f: IO[bytes],
    first: int,
    last: int,
    prev: bytes,
    progress: Callable[[int], None] | None,
) -> None:
    expected = first
    if first > last:
        return
    for row in log.reader.iter_chain(after_seq=first - 1):
        if row.seq > last:
            break
        if row.seq != expected or row.state is None or row.topic is None:
            raise LedgerError(
                f"chain entry {expected} is missing from the store; run `lotline verify`", seq=expected
            )
        canonical = encode_event(row.seq, row.originator_id, row.originator_version, row.topic, row.state)
        f.write(event_line(row.seq, row.originator_id, row.originator_version, row.chain_hash, canonical))
        expected += 1
        if progress is not None and expected % 10_000 == 0:
            progress(expected - first)
    if expected != last + 1:
        raise LedgerError(f"the chain ends at {expected - 1}, before {last}", seq=expected)


def _write_checkpoints(log: Transparency, f: IO[bytes], last: int, cover: Any) -> list[int]:
    sizes = []
    chosen = list(log.checkpoints.iter_all(up_to=last)) + ([cover] if cover is not None else [])
    for cp in chosen:
        f.write(
            _json_line(
                {
                    "size": cp.size,
                    "root": _b64(cp.root),
                    "key_id": cp.key_id,
                    "created_at": cp.created_at,
                    "note": cp.note,
                }
            )
        )
        sizes.append(cp.size)
    return sizes


def _write_cosignatures(log: Transparency, f: IO[bytes], sizes: list[int]) -> int:
    wanted, count = set(sizes), 0
    for c in log.checkpoints.iter_cosignatures(up_to=max(sizes, default=-1)):
        if c.size in wanted:
            f.write(
                _json_line(
                    {
                        "size": c.size,
                        "witness": c.witness,
                        "key_id": c.key_id,
                        "public_key": _b64(c.public_key),
                        "timestamp": c.timestamp,
                        "line": c.line,
                    }
                )
            )
            count += 1
    return count


def _write_keys(log: Transparency, f: IO[bytes]) -> int:
    keys = log.keys.all()
    for k in keys:
        f.write(
            _json_line(
                {
                    "name": k.name,
                    "key_id": k.key_id,
                    "public_key": _b64(k.public_key),
                    "vkey": k.vkey,
                    "valid_from": k.valid_from,
                    "valid_until": k.valid_until,
                }
            )
        )
    return len(keys)


def _write_writer_signatures(log: Transparency, f: IO[bytes], first: int, last: int) -> None:
    """The writer signatures of positions `first`..`last`, and the first one after `last` (which vouches
    for a tail that ends inside a commit, though its hash cannot be checked from this export)."""
    after = False
    for s in log.reader.signatures():
        if s.seq < first or after:
            continue
        after = s.seq > last
        f.write(_json_line({"seq": s.seq, "chain_hash": s.chain_hash.hex(), "kind": s.kind,
                            "key_id": s.key_id, "signature": _b64(s.signature)}))


def _chain_hash(log: Transparency, seq: int) -> bytes:
    if seq == 0:
        return GENESIS_HASH
    for row in log.reader.iter_chain(after_seq=seq - 1, page=1):
        if row.seq == seq:
            return row.chain_hash
        break
    raise LedgerError(f"chain entry {seq} is missing from the store", seq=seq)


def _open(path: Path) -> IO[bytes]:
    return open(path, "xb", buffering=1 << 20)


def _json_line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
