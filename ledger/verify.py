"""Verification of the hash chain straight from the store: streams, so memory stays flat."""

from __future__ import annotations

import gc
import itertools
import multiprocessing
import queue
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any

from ledger.chain import GENESIS_HASH, CanonicalEncodingError, encode_event, stream_text
from ledger.merkle import leaf_hash
from ledger.notes import VerifierKey
from ledger.recorders import ChainReader, Pairing
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
    on_leaves: OnLeaves | None = None,
    helpers: Helpers | None = None,
) -> Report:
    """Walk the chain from genesis, recompute every hash, and name the first event that fails; with
    the writer's public key (default: the key the reader's ledger signs with), also the first event the
    writer key does not sign (see `first_unsigned`). `on_leaves(after, leaves)` sees the Merkle leaf
    hashes of the events that verified, in order, a run at a time, so a caller checks more (the tree)
    without encoding the events again. With `helpers`, parts of a long chain are walked in other
    processes at the same time, with the same result."""
    with _collector_paused():
        return _verify_chain(reader, progress, writer_key, on_leaves, helpers)


OnLeaves = Callable[[int, bytes], None]
"""Called with the Merkle leaf hashes (32 bytes each) of the events at positions `after` + 1, ...; a
verified event's leaf always comes before its chain's next failure is reported."""

PART_EVENTS = 100_000
"""The fewest events worth a process of their own (starting one and collecting its leaves costs ~0.1 s)."""

_LEAVES_RUN = 20_000
"""Leaves handed on at a time: from a helper, runs the caller checks while the helper goes on."""


@dataclass(frozen=True, slots=True)
class Helpers:
    """Processes that walk parts of a long chain beside the caller: `processes` in all (the caller
    included), each opening its own reader with `open_reader` (in a forked child: nothing of the
    parent's connections is used there), closed when its part is walked. A chain shorter than
    `min_part` (default `PART_EVENTS`) events per process is walked by the caller alone."""

    processes: int
    open_reader: Callable[[], AbstractContextManager[ChainReader]]
    min_part: int | None = None
    caller_share: float = 0.4
    """The caller's part, the first: it also checks every leaf the others find, so it walks less."""

    def bounds(self, size: int) -> list[tuple[int, int | None]]:
        """The parts of a chain of `size` events: (after, until) positions, the last open-ended (events
        appended during the walk belong to it)."""
        n = max(1, min(self.processes, size // (self.min_part or PART_EVENTS))) if _can_fork() else 1
        if n == 1:
            return [(0, None)]
        first = int(size * self.caller_share * 2 / n)
        step = (size - first) // (n - 1)
        cuts = [0, first, *(first + step * i for i in range(1, n - 1))]
        return [*itertools.pairwise(cuts), (cuts[-1], None)]


def _can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


@dataclass(slots=True)
class _Part:
    """What the walk over positions `after` + 1 .. `until` found: `count` events verified there, the
    hash of the last (`last`), the first failure, the chain hash of each verified event (32 bytes each)
    and how the walk paired events with their chain rows."""

    after: int
    until: int | None
    count: int = 0
    last: bytes = GENESIS_HASH
    failure: Failure | None = None
    hashes: bytearray = field(default_factory=bytearray)
    pairing: Pairing = field(default_factory=Pairing)

    def failed(self, seq: int | None, stream: str, version: int | None, reason: str) -> _Part:
        self.failure = Failure(seq, stream, version, reason)
        return self

    def hash_at(self, seq: int) -> bytes:
        i = 32 * (seq - self.after - 1)
        return bytes(self.hashes[i : i + 32])


def _walk_part(
    reader: ChainReader,
    after: int,
    until: int | None,
    on_leaves: OnLeaves | None,
    progress: Callable[[int], None] | None = None,
) -> _Part:
    """Verify each link at positions `after` + 1 .. `until` against the stored hash before it; the
    leaves of the verified events are handed to `on_leaves` before the part's answer."""
    leaves = bytearray()
    run_start = after

    def hand_on(upto: int) -> None:
        nonlocal run_start
        if on_leaves is not None and leaves:
            on_leaves(run_start, bytes(leaves))
        leaves.clear()
        run_start = upto

    part = _Part(after, until)
    prev = reader.hash_at(after)
    if prev is None:
        return part.failed(after, "", None, f"chain entry {after} is missing: an event was deleted")
    part.last, expected = prev, after + 1
    walk = reader.walk(after=after, until=until)
    try:
        for seq, stream, version, chain_hash, topic, state in walk:
            if seq != expected:
                return part.failed(
                    expected,
                    stream_text(stream),
                    None,
                    f"chain entry {expected} is missing (next entry is {seq}): an event was deleted",
                )
            if state is None or topic is None:
                return part.failed(
                    seq,
                    stream_text(stream),
                    version,
                    "the chain names this event but the event table no longer holds it: deleted",
                )
            try:
                canonical = encode_event(seq, stream, version, topic, state)
            except CanonicalEncodingError as e:
                return part.failed(seq, stream_text(stream), version, f"stored event is corrupt: {e}")
            digest = sha256(prev + canonical).digest()
            if digest != chain_hash:
                return part.failed(
                    seq,
                    stream_text(stream),
                    version,
                    "hash mismatch: the event's content, time, actor or position was changed",
                )
            prev, part.last, part.count, expected = digest, digest, part.count + 1, seq + 1
            part.hashes += digest
            if on_leaves is not None:
                leaves += leaf_hash(canonical)
                if part.count % _LEAVES_RUN == 0:
                    hand_on(seq)
            if progress is not None and seq % 100_000 == 0:
                progress(seq)
    finally:
        hand_on(expected - 1)
    part.pairing = walk.pairing
    if until is not None and expected <= until:
        # The entries up to the part's end were deleted: named as one walk names them, by the next.
        following = next(reader.iter_chain(after_seq=until, page=1), None)
        if following is None:
            return part.failed(expected, "", None, f"chain entry {expected} is missing: an event was deleted")
        reason = f"chain entry {expected} is missing (next entry is {following.seq}): an event was deleted"
        return part.failed(expected, stream_text(following.originator_id), None, reason)
    return part


class _Helper:
    """One part of the chain walked in a forked child process, which queues its leaves as it goes (never
    waiting for the caller, who checks them once its own part is done) and its part at the end;
    `result()` hands the leaves on and returns the part."""

    def __init__(self, helpers: Helpers, after: int, until: int | None) -> None:
        ctx = multiprocessing.get_context("fork")
        self._queue: multiprocessing.Queue[Any] = ctx.Queue()
        self._process = ctx.Process(
            target=_help, args=(self._queue, helpers.open_reader, after, until), daemon=True
        )
        self._process.start()

    def result(self, on_leaves: OnLeaves | None, progress: Callable[[int], None] | None) -> _Part:
        while True:
            message = self._next()
            if isinstance(message, _Part):
                return message
            if isinstance(message, BaseException):
                raise message
            after, leaves = message
            if on_leaves is not None:
                on_leaves(after, leaves)
            end = after + len(leaves) // 32
            if progress is not None and end // 100_000 > after // 100_000:
                progress(end // 100_000 * 100_000)

    def _next(self) -> Any:
        while True:
            try:
                return self._queue.get(timeout=1.0)
            except queue.Empty:
                if not self._process.is_alive():
                    code = self._process.exitcode
                    raise RuntimeError(f"a verifying process ended with no answer (exit {code})") from None

    def stop(self) -> None:
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()
        self._queue.close()


def _help(
    out: multiprocessing.Queue[Any],
    open_reader: Callable[[], AbstractContextManager[ChainReader]],
    after: int,
    until: int | None,
) -> None:
    def hand_on(start: int, leaves: bytes) -> None:
        out.put((start, leaves))

    try:
        with open_reader() as reader:
            answer: _Part | BaseException = _walk_part(reader, after, until, hand_on)
    except Exception as e:  # the parent raises it: it names what went wrong in the child
        answer = RuntimeError(f"verifying events {after + 1}..{until or 'end'}: {e!r}")
    out.put(answer)
    out.close()
    out.join_thread()


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
    on_leaves: OnLeaves | None,
    helpers: Helpers | None,
) -> Report:
    if writer_key is None and reader.writer is not None:
        writer_key = reader.writer.verifier
    bounds = helpers.bounds(reader.head()[0]) if helpers is not None else [(0, None)]
    started = [_Helper(helpers, a, b) for a, b in bounds[1:]] if helpers is not None else []
    try:
        signed = {s.seq: s for s in reader.signatures()} if writer_key is not None else {}
        parts = [_walk_part(reader, *bounds[0], on_leaves, progress)]
        for helper in started:
            if parts[-1].failure is not None:
                break
            parts.append(helper.result(on_leaves, progress))
    finally:
        for helper in started:
            helper.stop()
    for part in parts:
        if part.failure is not None:
            return Report(False, part.after + part.count, part.last.hex(), part.failure)
    count, head = parts[-1].after + parts[-1].count, parts[-1].last

    def failed(reason: str, stream: str = "", version: int | None = None) -> Report:
        return Report(False, count, head.hex(), Failure(None, stream, version, reason))

    stray = reader.strays([p.pairing for p in parts], limit=1)
    if stray:
        return failed(
            "the event table holds an event the chain does not cover: inserted behind the ledger", *stray[0]
        )
    beyond = [seq for seq in signed if seq > count]
    if beyond:
        return failed(
            f"the writer signed the chain up to event {max(beyond)} but the store holds only {count} "
            "events: the tail of the log was cut off"
        )
    if writer_key is None:
        return Report(True, count, head.hex())
    hashes = {seq: next(p for p in reversed(parts) if p.after < seq).hash_at(seq) for seq in signed}
    matching = [signed[seq] for seq in sorted(signed) if signed[seq].chain_hash == hashes[seq]]
    rewritten = [seq for seq in sorted(signed) if signed[seq].chain_hash != hashes[seq]
                 and signed[seq].valid_for(writer_key)]
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
    return Report(True, count, head.hex())


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
