"""Writer signatures in an audit export: the first event no valid signature of the writer key covers.

The statement a signature signs (docs/canonical-encoding.md, "Commit signatures"):
`lotline commit signature v1\\n<kind>\\n<seq>\\n<base64 chain hash>\\n`. The ledger signs a commit only
over a validly signed head, so the newest valid signature at position n vouches for events 1..n.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from pathlib import Path
from typing import NamedTuple

from lotline_verify.notes import Invalid, Key, b64decode

HEADER = "lotline commit signature v1"
KINDS = ("commit", "adopted")


class WriterSignature(NamedTuple):
    """One commit's signature as the export lists it. A tuple: an export of a million events holds
    ~270,000, and a frozen dataclass cost as much to make as reading its line."""

    seq: int
    chain_hash: bytes
    kind: str
    key_id: str
    signature: bytes

    def valid_for(self, key: Key) -> bool:
        if self.key_id != key.id.hex() or self.kind not in KINDS:
            return False
        message = f"{HEADER}\n{self.kind}\n{self.seq}\n{base64.b64encode(self.chain_hash).decode()}\n"
        return key.verify(self.signature, message.encode())


_LINE = re.compile(
    rb'\{"seq":(0|[1-9][0-9]{0,18}),"chain_hash":"([0-9a-f]{64})","kind":"([a-z_]{1,32})",'
    rb'"key_id":"([0-9a-f]{1,64})","signature":"([A-Za-z0-9+/]{86}==)"\}\r?\n?'
)
"""A line as the export writes it: its values hold no escapes, so these groups are exactly what a JSON
parser would read; any other line (other spacing or order, escapes, another signature length) is parsed
as JSON. A million-event export holds ~270,000 of them: parsed with `json` they took a fifth of the
whole verification."""


def read_signatures(path: Path) -> dict[int, WriterSignature]:
    """The export's writer signatures by position; an empty dict when the file is absent."""
    if not path.exists():
        return {}
    out: dict[int, WriterSignature] = {}
    match = _LINE.fullmatch
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            found = match(line)
            if found is None:
                sig = _parsed(line, n, path)
            else:
                seq, chain_hash, kind, key_id, signature = found.groups()
                sig = WriterSignature(int(seq), binascii.a2b_hex(chain_hash), kind.decode(), key_id.decode(),
                                      binascii.a2b_base64(signature))
            out[sig.seq] = sig
    return out


def _parsed(line: bytes, n: int, path: Path) -> WriterSignature:
    """A writer signature line in any JSON form, or `Invalid` naming the line."""
    try:
        r = json.loads(line)
        return WriterSignature(int(r["seq"]), bytes.fromhex(r["chain_hash"]), str(r["kind"]),
                               str(r["key_id"]), b64decode(r["signature"], "writer signature"))
    except (ValueError, KeyError, TypeError, Invalid) as e:
        raise Invalid(f"{path.name} line {n} is not a writer signature: {e}") from None


def first_unsigned(
    first: int, last: int, matching: list[WriterSignature], later: list[WriterSignature], key: Key
) -> tuple[int, str, bool] | None:
    """(first event not covered, why, whether only a later commit outside the export vouches for it), or
    None when the writer key validly signs event `last`. `matching`: signatures in the export whose hash
    agrees with the chain, in order; `later`: those after `last`."""
    if last < first:
        return None
    bad: WriterSignature | None = None
    covered = first - 1
    for sig in reversed(matching):
        if sig.valid_for(key):
            covered = sig.seq
            break
        bad = bad or sig
    if covered == last:
        return None
    if bad is not None and bad.seq > covered:
        return covered + 1, (f"the writer signature at event {bad.seq} does not verify with writer key "
                             f"{key.id.hex()}: events {covered + 1}..{last} are not validly signed"), False
    if any(s.valid_for(key) for s in later):
        return covered + 1, (f"events {covered + 1}..{last} end inside a commit whose signature (at event "
                             f"{later[0].seq}) lies after this export"), True
    return covered + 1, (f"appended without the writer key: no valid writer signature covers events "
                         f"{covered + 1}..{last}"), False
