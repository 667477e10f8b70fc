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

# The eventsourcing JSON transcoder wraps non-JSON values as {"_type_": name, "_data_": text}.
_TYPED_VALUES = {"decimal_str", "datetime_iso", "uuid_hex", "date_iso"}


class CanonicalEncodingError(ValueError):
    """The stored state cannot be put in canonical form (not JSON, or holds a float)."""


@dataclass(frozen=True, slots=True)
class Link:
    seq: int
    canonical: bytes
    chain_hash: bytes


def _plain(value: Any) -> Any:
    """Unwrap transcoder type markers into their text; refuse floats (quantities are Decimal)."""
    if isinstance(value, dict):
        if len(value) == 2 and value.get("_type_") in _TYPED_VALUES and "_data_" in value:
            return str(value["_data_"])
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        raise CanonicalEncodingError("floats are not allowed in events")
    return value


def event_document(seq: int, stream: UUID | str, version: int, topic: str, state: bytes) -> dict[str, Any]:
    """The canonical document of one stored event, before it is turned into bytes."""
    try:
        raw = json.loads(state.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CanonicalEncodingError(f"stored state is not JSON: {e}") from None
    if not isinstance(raw, dict):
        raise CanonicalEncodingError("stored state is not a JSON object")
    payload = _plain(raw)
    audit = payload.pop("audit", None) or {}
    recorded_at = payload.pop("timestamp", None)
    return {
        "seq": seq,
        "stream": str(UUID(str(stream))) if not isinstance(stream, UUID) else str(stream),
        "version": version,
        "type": event_type(topic),
        "recorded_at": recorded_at,
        "occurred_at": audit.get("occurred_at"),
        "actor": {k: audit.get(k) for k in ("principal", "role", "name")},
        "reason": audit.get("reason"),
        "payload": payload,
    }


def canonical_bytes(document: dict[str, Any]) -> bytes:
    """UTF-8 JSON, keys sorted, no insignificant whitespace, non-ASCII kept as is."""
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def encode_event(seq: int, stream: UUID | str, version: int, topic: str, state: bytes) -> bytes:
    return canonical_bytes(event_document(seq, stream, version, topic, state))


def link_hash(prev: bytes, canonical: bytes) -> bytes:
    """chain_hash(n) = SHA-256(chain_hash(n-1) || canonical(n))."""
    return hashlib.sha256(prev + canonical).digest()


def event_type(topic: str) -> str:
    """`ledger.domain.lot:Lot.Released` -> `Lot.Released`: the topic without its module path."""
    return topic.split(":", 1)[-1]
