"""The hash chain: the canonical byte encoding of a stored event and the link to its predecessor.

The format is specified in docs/canonical-encoding.md; this module and that text must agree.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

GENESIS_HASH = bytes(32)
"""The `prev` of the first event: 32 zero bytes."""


class CanonicalEncodingError(ValueError):
    """The stored state cannot be put in canonical form (not JSON, or holds a float)."""


@dataclass(frozen=True, slots=True)
class Link:
    seq: int
    canonical: bytes
    chain_hash: bytes


def _no_float(text: str) -> Any:
    """The JSON parser's hook for every float and NaN/Infinity: refused while parsing, so the parsed
    value needs no second walk (that walk cost ~40% of verifying the chain)."""
    raise CanonicalEncodingError(f"floats are not allowed in events ({text})")


def _typed_text(value: Any, type_name: str, what: str) -> str:
    """The text of a typed value `{"_type_": type_name, "_data_": text}`, or an encoding error."""
    typed = isinstance(value, dict) and value.get("_type_") == type_name
    if not (typed and isinstance(value.get("_data_"), str)):
        raise CanonicalEncodingError(f"{what} is not a {type_name} value")
    return str(value["_data_"])


def event_document(seq: int, stream: UUID | str, version: int, topic: str, state: bytes) -> dict[str, Any]:
    """The canonical document of one stored event, before it is turned into bytes."""
    try:
        raw = json.loads(state.decode("utf-8"), parse_float=_no_float, parse_constant=_no_float)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CanonicalEncodingError(f"stored state is not JSON: {e}") from None
    if not isinstance(raw, dict):
        raise CanonicalEncodingError("stored state is not a JSON object")
    payload = raw
    audit = payload.pop("audit", None) or {}
    if not isinstance(audit, dict):
        raise CanonicalEncodingError("audit is not an object")
    recorded_at = _typed_text(payload.pop("timestamp", None), "datetime_iso", "timestamp")
    return {
        "seq": seq,
        "stream": str(stream if isinstance(stream, UUID) else UUID(str(stream))),
        "version": version,
        "type": event_type(topic),
        "recorded_at": recorded_at,
        "occurred_at": audit.get("occurred_at"),
        "actor": {k: audit.get(k) for k in ("principal", "role", "name")},
        "reason": audit.get("reason"),
        "payload": payload,
    }


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
"""Made once: `json.dumps` with these options builds an encoder per call, a third of the cost of
encoding an event (and one encoding per event on every append and every verification). Encoding
keeps no state between calls (the json module shares its default encoder the same way)."""


def canonical_bytes(document: dict[str, Any]) -> bytes:
    """UTF-8 JSON, keys sorted, no insignificant whitespace, non-ASCII kept as is."""
    return _CANONICAL.encode(document).encode("utf-8")


def encode_event(seq: int, stream: UUID | str, version: int, topic: str, state: bytes) -> bytes:
    return canonical_bytes(event_document(seq, stream, version, topic, state))


def link_hash(prev: bytes, canonical: bytes) -> bytes:
    """chain_hash(n) = SHA-256(chain_hash(n-1) || canonical(n))."""
    return hashlib.sha256(prev + canonical).digest()


def event_type(topic: str) -> str:
    """`ledger.domain.lot:Lot.Released` -> `Lot.Released`: the topic without its module path."""
    return topic.split(":", 1)[-1]
