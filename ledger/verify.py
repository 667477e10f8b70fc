"""Verification of the hash chain straight from the store: streams, so memory stays flat."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ledger.chain import GENESIS_HASH, CanonicalEncodingError, encode_event, link_hash
from ledger.recorders import ChainReader


@dataclass(frozen=True, slots=True)
class Failure:
    """The first event that does not verify, and why."""

    seq: int | None
    stream: str
    version: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class Report:
    ok: bool
    count: int
    head_hash: str
    failure: Failure | None = None

    def describe(self) -> str:
        if self.ok:
            return f"OK: {self.count} events, head {self.head_hash}"
        f = self.failure
        assert f is not None
        where = f"seq {f.seq}" if f.seq is not None else "outside the chain"
        return (
            f"FAILED at {where} (stream {f.stream}, version {f.version}): {f.reason}; "
            f"{self.count} events verified before it"
        )


def verify_chain(reader: ChainReader, progress: Callable[[int], None] | None = None) -> Report:
    """Walk the chain from genesis, recompute every hash, and name the first event that fails."""
    prev, count = GENESIS_HASH, 0

    def failed(seq: int | None, stream: str, version: int | None, reason: str) -> Report:
        return Report(False, count, prev.hex(), Failure(seq, stream, version, reason))

    for row in reader.iter_chain():
        expected = count + 1
        if row.seq != expected:
            return failed(
                expected,
                row.originator_id,
                None,
                f"chain entry {expected} is missing (next entry is {row.seq}): an event was deleted",
            )
        if row.state is None or row.topic is None:
            return failed(
                row.seq,
                row.originator_id,
                row.originator_version,
                "the chain names this event but the event table no longer holds it: deleted",
            )
        try:
            canonical = encode_event(row.seq, row.originator_id, row.originator_version, row.topic, row.state)
        except CanonicalEncodingError as e:
            return failed(row.seq, row.originator_id, row.originator_version, f"stored event is corrupt: {e}")
        digest = link_hash(prev, canonical)
        if digest != row.chain_hash:
            return failed(
                row.seq,
                row.originator_id,
                row.originator_version,
                "hash mismatch: the event's content, time, actor or position was changed",
            )
        prev, count = digest, count + 1
        if progress is not None and count % 10_000 == 0:
            progress(count)
    stray = reader.unchained_events(limit=1)
    if stray:
        stream, version = stray[0]
        return failed(
            None,
            stream,
            version,
            "the event table holds an event the chain does not cover: inserted behind the ledger",
        )
    return Report(True, count, prev.hex())
