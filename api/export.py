"""The audit export over HTTP, streamed: the `lotline-audit-export/1` files of docs/export-format.md.

Two shapes: `events_jsonl` yields `events.jsonl` alone (JSON lines of the raw events in canonical form
with their chain hashes, via `ledger.export.event_line`); `export_zip` yields a ZIP archive of the
whole export directory (manifest, events, checkpoints, cosignatures, keys), which `lotline-verify`
checks once unpacked. Both read the chain a page at a time, so memory stays flat; the manifest is the
last member, so an interrupted download has none and fails verification.
"""

from __future__ import annotations

import base64
import json
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from io import BytesIO
from typing import Any

from fastapi.responses import StreamingResponse

from ledger.chain import GENESIS_HASH, encode_event
from ledger.errors import InvalidInput, LedgerError
from ledger.export import FILES, FORMAT, event_line
from ledger.export import _write_checkpoints as write_checkpoints
from ledger.export import _write_cosignatures as write_cosignatures
from ledger.export import _write_keys as write_keys
from ledger.transparency import Transparency

PAGE = 2000
CHUNK = 1 << 20


def export_range(log: Transparency, last: int | None) -> int:
    """The last event an export from event 1 holds: `last`, or the chain's head now."""
    size, _ = log.reader.head()
    last = size if last is None else last
    if not 0 <= last <= size:
        raise InvalidInput(f"the log holds events 1..{size}; cannot export up to {last}", field="to")
    return last


def events_jsonl(log: Transparency, last: int) -> Iterator[bytes]:
    """events.jsonl for events 1..`last`, in chunks of about a MiB."""
    buffer = bytearray()
    for line in _event_lines(log, last):
        buffer += line
        if len(buffer) >= CHUNK:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


def zip_answer(log: Transparency, last: int) -> StreamingResponse:
    """The export of events 1..`last` as a ZIP download (the API's and the console's)."""
    return StreamingResponse(
        export_zip(log, last),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="lotline-export-{last}.zip"'},
    )


def export_zip(log: Transparency, last: int) -> Iterator[bytes]:
    """The export directory of events 1..`last` as a ZIP archive, streamed."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("events.jsonl", "w", force_zip64=True) as member:
            for chunk in events_jsonl(log, last):
                member.write(chunk)
                yield sink.take()
        cover = log.checkpoints.first_at_or_above(last)
        if cover is not None and cover.size == last:
            cover = None
        small = BytesIO()
        checkpoints = write_checkpoints(log, small, last, cover)
        archive.writestr("checkpoints.jsonl", small.getvalue())
        small = BytesIO()
        write_cosignatures(log, small, checkpoints)
        archive.writestr("cosignatures.jsonl", small.getvalue())
        small = BytesIO()
        write_keys(log, small)
        archive.writestr("keys.jsonl", small.getvalue())
        archive.writestr("manifest.json", json.dumps(_manifest(log, last, cover), indent=2) + "\n")
    yield sink.take()


def _event_lines(log: Transparency, last: int) -> Iterator[bytes]:
    expected = 1
    if last == 0:
        return
    for row in log.reader.iter_chain(after_seq=0, page=PAGE):
        if row.seq > last:
            break
        if row.seq != expected or row.state is None or row.topic is None:
            raise LedgerError(
                f"chain entry {expected} is missing from the store; run `lotline verify`", seq=expected
            )
        canonical = encode_event(row.seq, row.originator_id, row.originator_version, row.topic, row.state)
        yield event_line(row.seq, row.originator_id, row.originator_version, row.chain_hash, canonical)
        expected += 1
    if expected != last + 1:
        raise LedgerError(f"the chain ends at {expected - 1}, before {last}", seq=expected)


def _manifest(log: Transparency, last: int, cover: Any) -> dict[str, Any]:
    """manifest.json of an export from event 1 (no frontier, zero previous hash)."""
    return {
        "format": FORMAT,
        "origin": log.origin,
        "first_seq": 1,
        "last_seq": last,
        "prev_chain_hash": GENESIS_HASH.hex(),
        "frontier": [],
        "cover": None
        if cover is None
        else {
            "size": cover.size,
            "proof": [base64.b64encode(h).decode() for h in log.tree.consistency_proof(last, cover.size)],
        },
        "created_at": datetime.now(UTC).isoformat(),
        "files": list(FILES),
    }


class _Sink:
    """A write-only, unseekable file for `zipfile`: bytes collect here until the stream takes them."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._written = 0

    def write(self, data: bytes) -> int:
        self._buffer += data
        self._written += len(data)
        return len(data)

    def tell(self) -> int:
        return self._written

    def flush(self) -> None:
        """Nothing to flush: `take` hands the bytes on."""

    def close(self) -> None:
        """Nothing to release: the buffer is emptied by `take`."""

    def take(self) -> bytes:
        out = bytes(self._buffer)
        self._buffer.clear()
        return out
