"""The fast canonical encoder (msgspec) must give the bytes of the `json` one, or refuse and leave the
event to it: a verifier that accepted other bytes would accept an event the format does not."""

from __future__ import annotations

import json
from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.chain import CanonicalEncodingError, canonical_bytes, encode_event, event_document

TOPIC = "ledger.domain.lot:Lot.Released"
STAMP = {"_type_": "datetime_iso", "_data_": "2026-03-01T09:30:00.000000+00:00"}


def _slow(seq: int, stream: str, state: bytes) -> bytes:
    return canonical_bytes(event_document(seq, stream, 1, TOPIC, state))


def _state(payload: dict[str, object]) -> bytes:
    doc = {"timestamp": STAMP, "audit": {"principal": "qa", "role": "qa", "name": "Q"}, **payload}
    return json.dumps(doc, ensure_ascii=False).encode()


def test_every_code_point_is_written_as_json_writes_it() -> None:
    stream = uuid4().hex
    for start in range(0, 0x110000, 0x800):
        text = "".join(chr(c) for c in range(start, start + 0x800) if not 0xD800 <= c < 0xE000)
        state = _state({"text": text, text[:3] or "k": [text]})
        assert encode_event(7, stream, 1, TOPIC, state) == _slow(7, stream, state)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_any_payload_gives_the_bytes_json_gives(payload: dict[str, object]) -> None:
    payload = {k: v for k, v in payload.items() if k not in ("timestamp", "audit")}
    stream = str(uuid4())
    state = _state(payload)
    assert encode_event(3, stream, 1, TOPIC, state) == _slow(3, stream, state)


@pytest.mark.parametrize("bad", [
    b'{"timestamp": {"_type_": "datetime_iso", "_data_": "x"}, "q": 1.5}',
    b'{"timestamp": {"_type_": "datetime_iso", "_data_": "x"}, "q": 1e3}',
    b'{"timestamp": {"_type_": "datetime_iso", "_data_": "x"}, "q": NaN}',
    b'{"timestamp": {"_type_": "datetime_iso", "_data_": "x"}, "q": Infinity}',
    b'{"timestamp": {"_type_": "datetime_iso", "_data_": "x"}, "q": 1,}',
    b'{"timestamp": {"_type_": "datetime_iso", "_data_": "x"}, "q": "\xff"}',
    b'{"timestamp": "2026-03-01", "q": 1}',
    b'[1, 2]',
])
def test_what_json_refuses_the_fast_path_refuses_too(bad: bytes) -> None:
    with pytest.raises(CanonicalEncodingError):
        encode_event(1, str(uuid4()), 1, TOPIC, bad)


def test_a_stream_id_in_any_spelling_is_written_hyphenated() -> None:
    stream = uuid4()
    state = _state({"q": 1})
    expected = _slow(1, str(stream), state)
    for spelling in (stream, str(stream), stream.hex, stream.hex.upper(), str(stream).upper()):
        assert encode_event(1, spelling, 1, TOPIC, state) == expected  # type: ignore[arg-type]
