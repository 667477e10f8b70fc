"""Writer signatures in an audit export: the first event no valid signature of the writer key covers.

The statement a signature signs (docs/canonical-encoding.md, "Commit signatures"):
`lotline commit signature v1\\n<kind>\\n<seq>\\n<base64 chain hash>\\n`. The ledger signs a commit only
over a validly signed head, so the newest valid signature at position n vouches for events 1..n.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

from lotline_verify.notes import Invalid, Key, b64decode

HEADER = "lotline commit signature v1"
KINDS = ("commit", "adopted")


@dataclass(frozen=True)
class WriterSignature:
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


def read_signatures(path: Path) -> dict[int, WriterSignature]:
    """The export's writer signatures by position; an empty dict when the file is absent."""
    if not path.exists():
        return {}
    out: dict[int, WriterSignature] = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            try:
                r = json.loads(line)
                sig = WriterSignature(int(r["seq"]), bytes.fromhex(r["chain_hash"]), str(r["kind"]),
                                      str(r["key_id"]), b64decode(r["signature"], "writer signature"))
            except (ValueError, KeyError, TypeError) as e:
                raise Invalid(f"{path.name} line {n} is not a writer signature: {e}") from None
            out[sig.seq] = sig
    return out


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
