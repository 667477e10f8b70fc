"""Verification of the hash chain straight from the store: streams, so memory stays flat."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from hashlib import sha256

from ledger.chain import GENESIS_HASH, CanonicalEncodingError, encode_event, stream_text
from ledger.notes import VerifierKey
from ledger.recorders import ChainReader
from ledger.writer import CommitSignature


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


def verify_chain(
    reader: ChainReader,
    progress: Callable[[int], None] | None = None,
    writer_key: VerifierKey | None = None,
    on_event: Callable[[int, bytes], None] | None = None,
) -> Report:
    """Walk the chain from genesis, recompute every hash, and name the first event that fails; with
    the writer's public key (default: the key the reader's ledger signs with), also the first event the
    writer key does not sign (see `first_unsigned`). `on_event(seq, canonical)` sees each event that
    verified, so a caller checks more (the Merkle tree) without encoding the events again."""
    with _collector_paused():
        return _verify_chain(reader, progress, writer_key, on_event)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The walk makes millions of short-lived objects and keeps none: the cycle collector only costs
    (a quarter of the audit's time); reference counting still frees everything as it goes."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _verify_chain(
    reader: ChainReader,
    progress: Callable[[int], None] | None,
    writer_key: VerifierKey | None,
    on_event: Callable[[int, bytes], None] | None,
) -> Report:
    if writer_key is None and reader.writer is not None:
        writer_key = reader.writer.verifier
    prev, count = GENESIS_HASH, 0
    signed = {s.seq: s for s in reader.signatures()} if writer_key is not None else {}
    matching: list[CommitSignature] = []
    rewritten: list[int] = []

    def failed(seq: int | None, stream: str, version: int | None, reason: str) -> Report:
        return Report(False, count, prev.hex(), Failure(seq, stream, version, reason))

    walk = reader.walk()
    for seq, stream, version, chain_hash, topic, state in walk:
        expected = count + 1
        if seq != expected:
            return failed(
                expected,
                stream_text(stream),
                None,
                f"chain entry {expected} is missing (next entry is {seq}): an event was deleted",
            )
        if state is None or topic is None:
            return failed(
                seq,
                stream_text(stream),
                version,
                "the chain names this event but the event table no longer holds it: deleted",
            )
        try:
            canonical = encode_event(seq, stream, version, topic, state)
        except CanonicalEncodingError as e:
            return failed(seq, stream_text(stream), version, f"stored event is corrupt: {e}")
        digest = sha256(prev + canonical).digest()
        if digest != chain_hash:
            return failed(
                seq,
                stream_text(stream),
                version,
                "hash mismatch: the event's content, time, actor or position was changed",
            )
        prev, count = digest, count + 1
        if on_event is not None:
            on_event(seq, canonical)
        sig = signed.get(seq)
        if sig is not None and sig.chain_hash == digest:
            matching.append(sig)
        elif sig is not None and writer_key is not None and sig.valid_for(writer_key):
            rewritten.append(seq)
        if progress is not None and count % 100_000 == 0:
            progress(count)
    stray = reader.strays(walk, limit=1)
    if stray:
        stream, version = stray[0]
        return failed(
            None,
            stream,
            version,
            "the event table holds an event the chain does not cover: inserted behind the ledger",
        )
    beyond = [seq for seq in signed if seq > count]
    if beyond:
        return failed(
            None,
            "",
            None,
            f"the writer signed the chain up to event {max(beyond)} but the store holds only {count} "
            "events: the tail of the log was cut off",
        )
    if writer_key is not None:
        unsigned = first_unsigned(count, matching, writer_key)
        if unsigned is not None and rewritten and rewritten[0] >= unsigned[0]:
            unsigned = unsigned[0], (
                f"the writer signed other chain hashes for events {rewritten[0]}..{rewritten[-1]} than the "
                f"store holds: events {unsigned[0]}..{rewritten[-1]} were rewritten and re-chained after "
                "they were signed"
            )
        if unsigned is not None:
            seq, reason = unsigned
            row = next(reader.iter_chain(after_seq=seq - 1, page=1))
            failure = Failure(seq, row.originator_id, row.originator_version, reason)
            return Report(False, seq - 1, row.chain_hash.hex(), failure)
    return Report(True, count, prev.hex())


def first_unsigned(
    count: int, matching: list[CommitSignature], writer_key: VerifierKey
) -> tuple[int, str] | None:
    """The first of `count` events no valid writer signature covers, and why; None when the head is
    signed. `matching` are the stored signatures whose hash agrees with the chain, in position order.
    The writer signs a commit only over a validly signed head (ledger/writer.py), so one valid signature
    at position n vouches for events 1..n: only the newest signatures need checking."""
    if count == 0:
        return None
    bad: CommitSignature | None = None
    covered = 0
    for sig in reversed(matching):
        if sig.valid_for(writer_key):
            covered = sig.seq
            break
        bad = bad or sig
    if covered == count:
        return None
    if bad is not None and bad.seq > covered:
        return covered + 1, (
            f"the writer signature at seq {bad.seq} does not verify with writer key "
            f"{writer_key.key_id.hex()}: events {covered + 1}..{count} are not validly signed"
        )
    return covered + 1, (
        f"appended without the writer key: no valid writer signature covers events {covered + 1}..{count}"
        + ("" if covered else " (the store holds no valid writer signature)")
    )
