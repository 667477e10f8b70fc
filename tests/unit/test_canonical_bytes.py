"""The canonical encoding of an event document (docs/canonical-encoding.md): the bytes the chain hashes."""

from __future__ import annotations

import json
import threading

import pytest

from ledger.chain import CanonicalEncodingError, canonical_bytes, encode_event, event_document

STREAM = "0b7e3c1e-5d1f-4c47-9a1e-2f0e8c2d6b11"
TOPIC = "ledger.domain.lot:Lot.Released"

DOCUMENT = {
    "seq": 7,
    "stream": "0b7e3c1e-5d1f-4c47-9a1e-2f0e8c2d6b11",
    "version": 2,
    "type": "Kit.Shipped",
    "recorded_at": "2026-12-05T07:16:25.269254+00:00",
    "occurred_at": None,
    "actor": {"principal": "dépôt-1", "role": "depot", "name": "Zoë Ørsted"},
    "reason": None,
    "payload": {"z": [3, {"b": True, "a": "☃"}], "a": {"_type_": "decimal_str", "_data_": "1.50"}},
}


def test_canonical_bytes_are_sorted_compact_utf8_json() -> None:
    expected = json.dumps(
        DOCUMENT, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")
    assert canonical_bytes(DOCUMENT) == expected
    assert canonical_bytes(DOCUMENT).startswith('{"actor":{"name":"Zoë Ørsted",'.encode())


def test_canonical_bytes_refuse_nan_and_infinity() -> None:
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError):
            canonical_bytes({"payload": {"x": bad}})


def test_canonical_bytes_are_the_same_from_many_threads_at_once() -> None:
    # One encoder serves every thread: encoding keeps no state between calls.
    documents = [{**DOCUMENT, "seq": n, "payload": {"n": n, "k": list(range(n % 50))}} for n in range(2000)]
    expected = [canonical_bytes(d) for d in documents]
    results: dict[int, list[bytes]] = {}

    def encode(worker: int) -> None:
        results[worker] = [canonical_bytes(d) for d in documents]

    threads = [threading.Thread(target=encode, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r == expected for r in results.values())


def _stored(**audit: object) -> bytes:
    """An event's stored state with this audit stamp."""
    base = {"principal": "qa1", "role": "qa", "name": "Quinn QA", "occurred_at": "2026-01-02T01:04:05+00:00"}
    state = {"timestamp": {"_type_": "datetime_iso", "_data_": "2026-01-03T00:00:00+00:00"},
             "audit": {**base, **audit}, "q": 1}
    return json.dumps(state).encode()


def test_a_version_1_event_keeps_its_document_and_version_2_hashes_the_late_entry_too() -> None:
    late = {"late_entry": True, "late_reason": "paper batch record entered a week later"}
    old = event_document(1, STREAM, 1, TOPIC, _stored(**late))
    assert "late_reason" not in old and "canonical" not in old  # the bytes version-1 hashes were made of
    new = event_document(1, STREAM, 1, TOPIC, _stored(canonical=2, **late))
    assert (new["canonical"], new["late_entry"], new["late_reason"]) == (2, True, late["late_reason"])
    on_time = event_document(1, STREAM, 1, TOPIC, _stored(canonical=2))
    assert (on_time["late_entry"], on_time["late_reason"]) == (False, None)
    # an edited reason, a dropped flag or a dropped version mark gives other bytes
    variants = [
        _stored(canonical=2, **late),
        _stored(canonical=2, late_entry=True, late_reason="entered on time"),
        _stored(canonical=2, late_reason=late["late_reason"]),
        _stored(**late),
    ]
    assert len({encode_event(1, STREAM, 1, TOPIC, v) for v in variants}) == len(variants)


@pytest.mark.parametrize("version", [3, "2", True, 1])
def test_an_unknown_canonical_version_is_refused(version: object) -> None:
    with pytest.raises(CanonicalEncodingError):
        encode_event(1, STREAM, 1, TOPIC, _stored(canonical=version))
