"""Check a single-event proof bundle (`lotline-proof-bundle/1`): event, inclusion path, checkpoint."""

from __future__ import annotations

import json
from typing import Any

from lotline_verify.notes import Invalid, Key, b64decode, parse_head, parse_note, verify_signed
from lotline_verify.tree import leaf_hash, verify_inclusion


def verify_bundle(bundle: dict[str, Any], log_keys: list[Key]) -> str:
    """A one-line confirmation that the bundle's event is in the signed log; Invalid otherwise."""
    if bundle.get("format") != "lotline-proof-bundle/1":
        raise Invalid("not a lotline-proof-bundle/1")
    note = parse_note(bundle["checkpoint"])
    head = parse_head(note.text)
    key = verify_signed(note, log_keys)
    event = bundle["event"].encode("utf-8")
    seq, size = bundle["seq"], bundle["size"]
    if json.loads(event).get("seq") != seq or bundle["index"] != seq - 1:
        raise Invalid(f"the bundle's event is not event {seq}")
    if head.size != size or head.origin != bundle["origin"]:
        raise Invalid("the bundle's size or origin differ from its checkpoint's")
    path = [b64decode(h, "inclusion path") for h in bundle["path"]]
    if not verify_inclusion(seq - 1, size, leaf_hash(event), path, head.root):
        raise Invalid(f"event {seq} is not in the signed tree of {size} events: the inclusion proof fails")
    return f"event {seq} is in {head.origin} at size {size}, signed by {key.name} ({key.id.hex()})"
