"""The hash chain: the canonical byte encoding of a stored event and the link to its predecessor.

The format is specified in docs/canonical-encoding.md; this module and that text must agree.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import msgspec

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
    return _document(seq, stream, version, topic, raw)


def _document(seq: int, stream: UUID | str, version: int, topic: str, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise CanonicalEncodingError("stored state is not a JSON object")
    payload = raw
    audit = payload.pop("audit", None) or {}
    if not isinstance(audit, dict):
        raise CanonicalEncodingError("audit is not an object")
    recorded_at = _typed_text(payload.pop("timestamp", None), "datetime_iso", "timestamp")
    document = {
        "seq": seq,
        "stream": stream_text(stream),
        "version": version,
        "type": event_type(topic),
        "recorded_at": recorded_at,
        "occurred_at": audit.get("occurred_at"),
        "actor": {"principal": audit.get("principal"), "role": audit.get("role"), "name": audit.get("name")},
        "reason": audit.get("reason"),
        "payload": payload,
    }
    mark = audit.get("canonical")
    if mark is not None:  # events recorded before version 2 keep the bytes, and the hashes, they had
        if mark != 2 or isinstance(mark, bool):
            raise CanonicalEncodingError(f"unknown canonical document version {mark!r}")
        document["canonical"] = 2
        late = audit.get("late_entry", False)
        if not isinstance(late, bool):
            raise CanonicalEncodingError("late_entry is not true or false")
        document["late_entry"] = late
        document["late_reason"] = audit.get("late_reason")
    captured = audit.get("captured_from")
    if captured is not None:  # only a captured step has it: every other event's bytes are as they were
        document["captured_from"] = captured
    return document


_HEX32 = re.compile(r"[0-9a-f]{32}")
_HYPHENATED = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@functools.lru_cache(maxsize=16_384)  # a stream's events lie close together: a fifth are hits on the 1M demo
def stream_text(stream: UUID | str) -> str:
    """A stream id as a lowercase hyphenated UUID; SQLite's 32 lowercase hex digits are cut, and
    PostgreSQL's text already in that form kept, not parsed."""
    if isinstance(stream, str) and len(stream) == 32 and _HEX32.fullmatch(stream):
        return f"{stream[:8]}-{stream[8:12]}-{stream[12:16]}-{stream[16:20]}-{stream[20:]}"
    if isinstance(stream, str) and len(stream) == 36 and _HYPHENATED.fullmatch(stream):
        return stream
    return str(stream if isinstance(stream, UUID) else UUID(str(stream)))


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
"""Made once: `json.dumps` with these options builds an encoder per call, a third of the cost of
encoding an event (and one encoding per event on every append and every verification). Encoding
keeps no state between calls (the json module shares its default encoder the same way)."""


def canonical_bytes(document: dict[str, Any]) -> bytes:
    """UTF-8 JSON, keys sorted, no insignificant whitespace, non-ASCII kept as is."""
    return _CANONICAL.encode(document).encode("utf-8")


def _refuse_float(text: str) -> Any:
    raise ValueError(f"float {text}")


# A C decoder and encoder whose bytes are those of `json` above (keys sorted by code point, UTF-8, the
# same escapes: tests/unit/test_canonical_fast.py checks every code point): encoding an event with them
# costs a third of `json`'s. They refuse what they cannot do exactly as `json` (floats, NaN, lone
# surrogates, ...); such an event takes the `json` path, which names the problem or encodes it.
_decode_fast = msgspec.json.Decoder(float_hook=_refuse_float).decode
_encode_fast = msgspec.json.Encoder(order="sorted").encode


def encode_event(seq: int, stream: UUID | str, version: int, topic: str, state: bytes) -> bytes:
    """The canonical bytes of one stored event (docs/canonical-encoding.md)."""
    try:
        raw = _decode_fast(state)
    except (msgspec.MsgspecError, ValueError):
        return canonical_bytes(event_document(seq, stream, version, topic, state))
    document = _document(seq, stream, version, topic, raw)
    try:
        return _encode_fast(document)
    except (msgspec.MsgspecError, ValueError):
        return canonical_bytes(document)


def link_hash(prev: bytes, canonical: bytes) -> bytes:
    """chain_hash(n) = SHA-256(chain_hash(n-1) || canonical(n))."""
    return hashlib.sha256(prev + canonical).digest()


@functools.lru_cache(maxsize=1024)
def event_type(topic: str) -> str:
    """`ledger.domain.lot:Lot.Released` -> `Lot.Released`: the topic without its module path."""
    return topic.split(":", 1)[-1]
