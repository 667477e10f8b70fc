"""The canonical encoding of an event document (docs/canonical-encoding.md): the bytes the chain hashes."""

from __future__ import annotations

import json
import threading

import pytest

from ledger.chain import canonical_bytes

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
