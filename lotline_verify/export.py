"""Verify a Lotline audit export (docs/export-format.md) in one streaming pass over its events.

Memory holds the checkpoints, cosignatures and keys (small) and the O(log n) right frontier of the
Merkle tree; events are read a line at a time. A long export is cut into parts at line ends, walked side
by side by forked processes: each keeps the Merkle leaf and chain hash of its events (64 bytes an event)
until this process, done with its own part, takes them in order, so the verdict is the one walk's.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import functools
import gc
import hashlib
import json
import multiprocessing
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from lotline_verify.notes import (
    COSIGNATURE_V1,
    ED25519,
    Head,
    Invalid,
    Key,
    b64decode,
    parse_head,
    parse_note,
    parse_vkey,
    verify_cosignature,
    verify_signed,
)
from lotline_verify.tree import Frontier, verify_consistency
from lotline_verify.writer import WriterSignature, first_unsigned, read_signatures

FORMAT = "lotline-audit-export/1"
EVENT_MARK = b',"event":'
_TAIL = re.compile(
    rb',"seq":(0|[1-9][0-9]*),"stream":"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})",'
    rb'"type":"[A-Za-z0-9_.]*","version":(0|[1-9][0-9]*)\}'
)
"""The last members of a canonical event (keys sorted: seq, stream, type, version come last, and hold
no object, so no other `,"seq":` can follow the top-level one)."""


class EventInvalid(Invalid):
    """An event line that does not verify."""

    def __init__(self, seq: int, reason: str, stream: str | None = None, version: int | None = None):
        super().__init__(reason)
        self.seq, self.stream, self.version = seq, stream, version


@dataclass
class Verdict:
    """The outcome: OK with what was verified, or the first failure and its reason."""

    ok: bool = False
    origin: str = ""
    first_seq: int = 1
    last_seq: int = 0
    events: int = 0
    head: str = ""
    checkpoints: int = 0
    latest: Head | None = None
    cosigned: dict[str, int] = field(default_factory=dict)
    trusted: Head | None = None
    writer: str = ""
    warnings: list[str] = field(default_factory=list)
    reason: str = ""
    seq: int | None = None
    stream: str | None = None
    version: int | None = None

    def describe(self) -> str:
        lines = [f"lotline-verify: {'OK' if self.ok else 'FAILED'}"]
        if not self.ok:
            where = ""
            if self.seq is not None:
                where = f"at event {self.seq}"
                if self.stream is not None:
                    where += f" (stream {self.stream}, version {self.version})"
                where += ": "
            lines.append(f"  {where}{self.reason}")
            lines.append(f"  {self.events} events verified before the failure")
            return "\n".join(lines)
        lines.append(f"  log          {self.origin}")
        lines.append(f"  events       {self.first_seq}..{self.last_seq} ({self.events}), "
                     f"chain head {self.head}")
        if self.latest is not None:
            lines.append(f"  checkpoints  {self.checkpoints} verified; newest: size {self.latest.size}, root "
                         f"{_b64(self.latest.root)}")
        if self.writer:
            lines.append(f"  writer       every event signed by {self.writer}")
        for witness, size in sorted(self.cosigned.items()):
            lines.append(f"  cosigned     by {witness} up to size {size}")
        if self.trusted is not None:
            lines.append(f"  trusted      your checkpoint of size {self.trusted.size} is consistent "
                         "with this log")
        lines.extend(f"  warning      {w}" for w in self.warnings)
        return "\n".join(lines)


@dataclass(frozen=True)
class _Checkpoint:
    head: Head
    note_text: str
    key: Key


def verify_export(
    directory: str | Path,
    trusted: str | None = None,
    log_keys: list[Key] | None = None,
    witness_keys: list[Key] | None = None,
    strict: bool = False,
    progress: Callable[[int], None] | None = None,
    writer_key: Key | None = None,
    jobs: int | None = None,
) -> Verdict:
    """Check every event, the chain, the writer's signature over it, each checkpoint's root and signature,
    every cosignature and, given `trusted` (a checkpoint note saved earlier), that this log extends it
    unchanged. `writer_key` pins the writer's public key (else the export's is used, with a warning).
    A long export is walked by up to `jobs` processes side by side (default: the CPU count, at most 4),
    with the same verdict."""
    verdict = Verdict()
    jobs = jobs if jobs is not None else DEFAULT_JOBS
    try:
        _verify(Path(directory), verdict, trusted, log_keys, witness_keys, strict, progress, writer_key,
                jobs)
        verdict.ok = True
    except EventInvalid as e:
        verdict.reason, verdict.seq, verdict.stream, verdict.version = str(e), e.seq, e.stream, e.version
    except Invalid as e:
        verdict.reason = str(e)
    except OSError as e:
        verdict.reason = f"cannot read the export: {e}"
    return verdict


def _verify(
    d: Path, v: Verdict, trusted_text: str | None, pins: list[Key] | None,
    witness_pins: list[Key] | None, strict: bool, progress: Callable[[int], None] | None,
    writer_pin: Key | None, jobs: int,
) -> None:
    m = _manifest(d / "manifest.json")
    writer = _writer_key(m, writer_pin, v)
    matching: list[WriterSignature] = []
    rewritten: list[WriterSignature] = []
    v.origin, v.first_seq, v.last_seq = m["origin"], m["first_seq"], m["last_seq"]
    first, last = v.first_seq, v.last_seq
    windows = _keys(d / "keys.jsonl")
    keys = [k for k in windows if pins is None or k in pins] + [k for k in pins or [] if k not in windows]
    checkpoints = _checkpoints(d / "checkpoints.jsonl", v.origin, keys, windows)
    by_size = {c.head.size: c for c in checkpoints}
    v.checkpoints = len(checkpoints)
    v.latest = checkpoints[-1].head if checkpoints else None
    v.cosigned = _cosignatures(d / "cosignatures.jsonl", by_size, witness_pins)
    trusted = _trusted(trusted_text, v.origin, keys, by_size) if trusted_text is not None else None

    targets: dict[int, tuple[bytes, str]] = {}
    for c in checkpoints:
        if first - 1 <= c.head.size <= last:
            targets[c.head.size] = (c.head.root, f"signed checkpoint {c.head.size}")
    if trusted is not None and first - 1 <= trusted.size <= last:
        targets.setdefault(trusted.size, (trusted.root, f"your trusted checkpoint {trusted.size}"))

    try:
        frontier = Frontier(first - 1, [b64decode(h, "manifest frontier") for h in m["frontier"]])
    except ValueError as e:
        raise Invalid(f"the manifest's frontier: {e}") from None
    _check_root(frontier, targets, first - 1, 1)
    prev = bytes.fromhex(m["prev_chain_hash"])
    # The walk makes a few objects per event and keeps none: the cycle collector would only cost time.
    collecting = gc.isenabled()
    gc.disable()
    try:
        head, signed = _stream(
            d / "events.jsonl", v, first, last, prev, frontier, targets, strict, progress,
            functools.partial(read_signatures, d / "writer_signatures.jsonl") if writer is not None else dict,
            matching, rewritten, jobs,
        )
    finally:
        if collecting:
            gc.enable()
    v.head = head.hex()
    if writer is not None:
        later = [s for s in signed.values() if s.seq > last]
        unsigned = first_unsigned(first, last, matching, later, writer)
        forged = [s for s in rewritten if s.valid_for(writer)]
        if unsigned is not None and forged and forged[0].seq >= unsigned[0]:
            unsigned = unsigned[0], (
                f"the writer signed other chain hashes for events {forged[0].seq}..{forged[-1].seq} than "
                f"this export holds: events {unsigned[0]}..{forged[-1].seq} were rewritten and re-chained "
                "after they were signed"
            ), False
        if unsigned is not None and unsigned[2]:
            v.warnings.append(unsigned[1])
        elif unsigned is not None:
            v.events = unsigned[0] - first
            raise EventInvalid(unsigned[0], unsigned[1])
    _after_stream(v, m, checkpoints, by_size, frontier.root(), trusted)


def _after_stream(
    v: Verdict, m: dict[str, Any], checkpoints: list[_Checkpoint], by_size: dict[int, _Checkpoint],
    root_at_last: bytes, trusted: Head | None,
) -> None:
    first, last = v.first_seq, v.last_seq
    cover = m.get("cover")
    cover_size = cover["size"] if cover else None
    for c in checkpoints:
        if c.head.size > last and c.head.size != cover_size:
            raise Invalid(f"checkpoint {c.head.size} was signed for {c.head.size} events but the export "
                          f"ends at event {last}: events were cut off")
    if cover:
        signed = by_size.get(cover["size"])
        if signed is None:
            raise Invalid(f"the manifest's cover checkpoint {cover_size} is not among the checkpoints")
        proof = [b64decode(h, "cover proof") for h in cover["proof"]]
        if not verify_consistency(last, signed.head.size, root_at_last, signed.head.root, proof):
            raise Invalid(f"events 1..{last} are not a prefix of signed checkpoint {cover_size}: "
                          "the exported events differ from what was signed")
    if trusted is not None and trusted.size > last:
        raise Invalid(f"your trusted checkpoint has {trusted.size} events but this log shows only {last}: "
                      "the log was truncated or rolled back (or this is a partial export)")
    if trusted is not None and trusted.size < first - 1:
        raise Invalid(f"your trusted checkpoint ({trusted.size} events) lies before this export's range "
                      f"(from event {first}); export from event 1 to check it")
    v.trusted = trusted
    covered = max([c.head.size for c in checkpoints if c.head.size <= last] + [cover_size or 0])
    if not checkpoints:
        v.warnings.append("the export holds no checkpoint: nothing in it is signed by the log")
    elif covered < last:
        v.warnings.append(f"events {max(covered, first - 1) + 1}..{last} are not covered by a "
                          "signed checkpoint")
    early = [c.head.size for c in checkpoints if c.head.size < first - 1]
    if early:
        v.warnings.append(f"{len(early)} checkpoints before event {first} were checked for their "
                          "signature only")


_CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

DEFAULT_JOBS = min(_CPUS, 4)
"""Processes that walk a long export side by side, unless told otherwise: the CPUs this process may run
on, at most 4."""


def jobs_argument(text: str) -> int:
    """A command line's number of processes (`--jobs`): 1 to 64."""
    try:
        jobs = int(text)
    except ValueError:
        jobs = 0
    if not 1 <= jobs <= 64:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of processes from 1 to 64")
    return jobs


_PART_BYTES = 64 << 20
"""The least of events.jsonl worth a process of its own (~70,000 events; starting one costs ~0.1 s)."""

_RUN = 1 << 16
"""Events walked before their leaves and chain hashes are handed on: memory stays bounded."""

_HEADER = re.compile(rb'\{"seq":([1-9][0-9]*),"stream":"[^"]*","version":(?:0|[1-9][0-9]*),'
                     rb'"chain_hash":"([0-9a-f]{64})","event":')
"""A line's header as the export writes it: where the next line's walk starts (its seq and chain hash)."""


@dataclass
class _Part:
    """Lines of events.jsonl from byte `start` to `end`, the first of them event `seq`, chained to `prev`;
    after the walk, `runs` of (first seq, Merkle leaves, chain hashes) of the events that verified, in
    order, then the first failure (seq, reason, stream, version) if one was found, or `error` if the
    walk could not be done."""

    start: int
    end: int
    seq: int
    prev: bytes
    runs: list[tuple[int, bytes, bytes]] = field(default_factory=list)
    failure: tuple[int, str, str | None, int | None] | None = None
    error: str | None = None


def _stream(
    path: Path, v: Verdict, first: int, last: int, prev: bytes, frontier: Frontier,
    targets: dict[int, tuple[bytes, str]], strict: bool, progress: Callable[[int], None] | None,
    read_signed: Callable[[], dict[int, WriterSignature]], matching: list[WriterSignature],
    rewritten: list[WriterSignature], jobs: int,
) -> tuple[bytes, dict[int, WriterSignature]]:
    """Walk events.jsonl (each line's header, canonical bytes and chain link) in parts, the later ones
    side by side in forked processes when the file is long; then take each part's events in order:
    their Merkle leaves into the frontier, checked against the signed roots at checkpoint sizes, and
    their chain hashes against the writer signatures (read here while the other parts are walked)."""
    parts = _parts(path, first, prev, jobs)
    children = [_Child(path, part, first, last, strict) for part in parts[1:]]
    try:
        signed = read_signed()
        signed_seqs, sizes = sorted(signed), sorted(targets)

        def take(seq: int, leaves: bytes, hashes: bytes) -> None:
            end = seq + len(leaves) // 32 - 1
            done = seq - 1
            for size in [*sizes[bisect.bisect_left(sizes, seq) : bisect.bisect_right(sizes, end)], end]:
                frontier.extend(leaves[32 * (done + 1 - seq) : 32 * (size + 1 - seq)])
                v.events += size - done
                done = size
                _check_root(frontier, targets, size, first)
            at = signed_seqs[bisect.bisect_left(signed_seqs, seq) : bisect.bisect_right(signed_seqs, end)]
            for s in at:
                i = 32 * (s - seq)
                (matching if signed[s].chain_hash == hashes[i : i + 32] else rewritten).append(signed[s])
            if progress is not None and (end - first + 1) // 100_000 > (seq - first) // 100_000:
                progress((end - first + 1) // 100_000 * 100_000)

        walked = _walk(path, parts[0], first, last, strict, take)
        for child in children:
            _check_part(walked)
            if (walked.seq, walked.prev) != (child.part.seq, child.part.prev):
                raise Invalid("events.jsonl changed while it was being verified")
            walked = child.result()
            for run in walked.runs:
                take(*run)
        _check_part(walked)
    finally:
        for child in children:
            child.stop()
    if walked.seq - 1 != last:
        raise EventInvalid(walked.seq, f"events.jsonl ends after event {walked.seq - 1} but the manifest "
                           f"lists events up to {last}: the tail was cut off")
    return walked.prev, signed


def _parts(path: Path, first: int, prev: bytes, jobs: int) -> list[_Part]:
    """events.jsonl cut into up to `jobs` parts at line ends, the first smaller (its walker also takes
    every part's leaves and signatures); one part where processes cannot be forked. A later part starts
    after a line whose header names its seq and chain hash, which the part before it verifies."""
    size = path.stat().st_size
    n = max(1, min(jobs, size // _PART_BYTES)) if "fork" in multiprocessing.get_all_start_methods() else 1
    parts = [_Part(0, size, first, prev)]
    if n == 1:
        return parts
    head = int(size * 0.8 / n)
    with open(path, "rb") as f:
        for k in range(n - 1):
            f.seek(head + (size - head) * k // (n - 1))
            f.readline()  # the rest of the line the cut falls in
            line = f.readline()
            found = _HEADER.match(line)
            at = f.tell()
            if found is None or at >= size or at <= parts[-1].start:
                continue  # not a line as the export writes it: the part before walks on through it
            parts[-1].end = at
            parts.append(_Part(at, size, int(found[1]) + 1, bytes.fromhex(found[2].decode())))
    return parts


def _check_part(walked: _Part) -> None:
    if walked.error is not None:
        raise Invalid(walked.error)
    if walked.failure is not None:
        raise EventInvalid(*walked.failure)


def _walk(
    path: Path, part: _Part, first: int, last: int, strict: bool,
    hand_on: Callable[[int, bytes, bytes], None],
) -> _Part:
    """Verify each line of `part` against its header and the line before: the event's bytes give its
    chain hash; the leaves and chain hashes of the events that verified go to `hand_on` a run at a time
    (the first failure is kept in the part, after the run before it)."""
    sha256 = hashlib.sha256
    seq, prev, left = part.seq, part.prev, part.end - part.start
    leaves, hashes = bytearray(), bytearray()
    run_seq = seq
    try:
        with open(path, "rb", buffering=1 << 20) as f:
            f.seek(part.start)
            for line in f:
                if left <= 0:
                    break
                left -= len(line)
                if seq > last:
                    raise EventInvalid(seq, f"events.jsonl holds more than the {last - first + 1} events "
                                       "its manifest lists: an event was inserted")
                cut = line.find(EVENT_MARK)
                if cut < 0 or not line.endswith(b"}\n"):
                    raise EventInvalid(seq, "the line is not an event line of the export format")
                event = line[cut + 9 : -2]
                # The event's own position and identity, from the members that end every canonical event;
                # an event that does not end so (or is elsewhere than its seq says) is parsed, to say why.
                tail = None if strict else _TAIL.fullmatch(event, max(event.rfind(b',"seq":'), 0))
                if tail is None or tail[1] != b"%d" % seq:
                    doc = _document(seq, event, strict)
                    stream, version = doc["stream"].encode(), b"%d" % doc["version"]
                else:
                    stream, version = tail[2], tail[3]
                chained = sha256(prev + event).digest()
                stated = b'{"seq":%d,"stream":"%s","version":%s,"chain_hash":"%s"' % (
                    seq, stream, version, chained.hex().encode())
                if line[:cut] != stated:
                    _explain_header(seq, line[:cut], _document(seq, event, strict), chained)
                prev = chained
                leaves += sha256(b"\x00" + event).digest()
                hashes += chained
                seq += 1
                if seq - run_seq == _RUN:
                    run = run_seq, bytes(leaves), bytes(hashes)
                    leaves.clear()
                    hashes.clear()
                    run_seq = seq
                    hand_on(*run)
    except EventInvalid as e:
        part.failure = (e.seq, str(e), e.stream, e.version)
    finally:
        if leaves:
            hand_on(run_seq, bytes(leaves), bytes(hashes))
    part.seq, part.prev = seq, prev
    return part


class _Child:
    """One part walked in a forked process, which sends back its part (runs included) at the end."""

    def __init__(self, path: Path, part: _Part, first: int, last: int, strict: bool) -> None:
        self.part = part
        ctx = multiprocessing.get_context("fork")
        self._receive, send = ctx.Pipe(duplex=False)
        self._process = ctx.Process(target=_child, args=(send, path, part, first, last, strict), daemon=True)
        self._process.start()
        send.close()

    def result(self) -> _Part:
        try:
            answer: _Part = self._receive.recv()
        except EOFError:
            code = self._process.exitcode
            raise Invalid(f"a verifying process ended with no answer (exit {code})") from None
        return answer

    def stop(self) -> None:
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()
        self._receive.close()


def _child(send: Any, path: Path, part: _Part, first: int, last: int, strict: bool) -> None:
    try:
        part = _walk(path, part, first, last, strict, lambda *run: part.runs.append(run))
    except Exception as e:  # told to the parent, which names it as the export's failure
        part.error = f"cannot verify events.jsonl from byte {part.start}: {e}"
    send.send(part)
    send.close()


def _document(seq: int, event: bytes, strict: bool) -> dict[str, Any]:
    try:
        doc = json.loads(event, parse_float=_no_float) if strict else json.loads(event)
    except (ValueError, Invalid) as e:
        raise EventInvalid(seq, f"the event is not valid canonical JSON: {e}") from None
    if not (isinstance(doc, dict) and isinstance(doc.get("stream"), str)
            and type(doc.get("version")) is int):
        raise EventInvalid(seq, "the event has no stream and version")
    if doc.get("seq") != seq:
        raise EventInvalid(seq, f"expected event {seq} here but found event {doc.get('seq')}: events are "
                           "missing, inserted or out of order", doc["stream"], doc["version"])
    if strict:
        again = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        if again != event:
            raise EventInvalid(seq, "the event's bytes are not in canonical form",
                               doc["stream"], doc["version"])
    return doc


def _no_float(text: str) -> Any:
    raise Invalid(f"floats are not allowed ({text})")


def _explain_header(seq: int, header: bytes, doc: dict[str, Any], chained: bytes) -> None:
    stream, version = doc["stream"], doc["version"]
    try:
        h = json.loads(header + b"}")
    except ValueError:
        raise EventInvalid(seq, "the line's header is not the export's fixed layout",
                           stream, version) from None
    if (h.get("seq"), h.get("stream"), h.get("version")) != (seq, stream, version):
        raise EventInvalid(seq, "the line's seq, stream or version disagree with its event",
                           stream, version)
    if h.get("chain_hash") != chained.hex():
        raise EventInvalid(seq, "chain hash mismatch: this event's bytes were altered, or an event before it "
                           "was removed, inserted or reordered", stream, version)
    raise EventInvalid(seq, "the line's header is not the export's fixed layout", stream, version)


def _check_root(
    frontier: Frontier, targets: dict[int, tuple[bytes, str]], size: int, first: int
) -> None:
    """Compare the root of the first `size` events with the signed one; name the span that differs."""
    if size not in targets:
        return
    expected, what = targets[size]
    if frontier.root() != expected:
        since = max([s for s in targets if s < size], default=first - 1)
        raise Invalid(f"the Merkle root of events 1..{size} differs from {what}: events {since + 1}..{size} "
                      "are not the ones that were signed (altered, inserted, removed or reordered, "
                      "and the chain re-hashed to hide it)")


# --- the small files -----------------------------------------------------------------------------------


def _manifest(path: Path) -> dict[str, Any]:
    m = json.loads(path.read_text())
    if m.get("format") != FORMAT:
        raise Invalid(f"not a {FORMAT} export (format {m.get('format')!r})")
    first, last = m.get("first_seq"), m.get("last_seq")
    if type(first) is not int or type(last) is not int or not 1 <= first <= last + 1:
        raise Invalid("the manifest's first_seq/last_seq are not a range of events")
    if not isinstance(m.get("origin"), str) or not isinstance(m.get("frontier"), list):
        raise Invalid("the manifest lacks origin or frontier")
    prev = m.get("prev_chain_hash")
    if not isinstance(prev, str) or len(prev) != 64:
        raise Invalid("the manifest's prev_chain_hash is not 32 bytes of hex")
    if first == 1 and (prev != "0" * 64 or m["frontier"]):
        raise Invalid("an export from event 1 starts from the zero chain hash and an empty tree")
    return m


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            try:
                yield json.loads(line)
            except ValueError:
                raise Invalid(f"{path.name} line {n} is not JSON") from None


def _keys(path: Path) -> dict[Key, tuple[str, str | None]]:
    """Exported log keys -> (valid_from, valid_until), after checking each key ID and vkey."""
    out = {}
    for k in _lines(path):
        key = Key(k["name"], ED25519, b64decode(k["public_key"], "public key"))
        if key.id.hex() != k["key_id"] or key.vkey() != k["vkey"]:
            raise Invalid(f"log key {k['name']} {k['key_id']}: its key ID or vkey does not match the key")
        out[key] = (k["valid_from"], k["valid_until"])
    return out


def _checkpoints(
    path: Path, origin: str, keys: list[Key], windows: dict[Key, tuple[str, str | None]]
) -> list[_Checkpoint]:
    out: list[_Checkpoint] = []
    for row in _lines(path):
        size = row["size"]
        try:
            note = parse_note(row["note"])
            head = parse_head(note.text)
            key = verify_signed(note, keys)
        except Invalid as e:
            raise Invalid(f"checkpoint {size}: {e}") from None
        if head.origin != origin or head.size != size or _b64(head.root) != row["root"]:
            raise Invalid(f"checkpoint {size}: its signed text does not match its origin, size or root")
        if key.id.hex() != row["key_id"]:
            raise Invalid(f"checkpoint {size}: signed by key {key.id.hex()}, not {row['key_id']} as listed")
        if key in windows and not _within(row["created_at"], *windows[key]):
            raise Invalid(f"checkpoint {size}: made at {row['created_at']}, outside the validity of key "
                          f"{key.id.hex()} ({windows[key][0]} .. {windows[key][1] or 'now'})")
        if out and size <= out[-1].head.size:
            raise Invalid(f"checkpoint {size} is listed after checkpoint {out[-1].head.size}")
        out.append(_Checkpoint(head, note.text, key))
    return out


def _cosignatures(
    path: Path, by_size: dict[int, _Checkpoint], pins: list[Key] | None
) -> dict[str, int]:
    """Check every cosignature; return, per witness (trusted ones when pinned), the largest size cosigned."""
    best: dict[str, int] = {}
    for row in _lines(path):
        size = row["size"]
        if size not in by_size:
            raise Invalid(f"a cosignature by {row['witness']} is for checkpoint {size}, "
                          "which is not exported")
        key = Key(row["witness"], COSIGNATURE_V1, b64decode(row["public_key"], "witness key"))
        try:
            note = parse_note("x\n\n" + row["line"] + "\n")
            when = verify_cosignature(by_size[size].note_text, note.signatures[0], key)
        except Invalid as e:
            raise Invalid(f"checkpoint {size}: {e}") from None
        if when != row["timestamp"] or key.id.hex() != row["key_id"]:
            raise Invalid(f"checkpoint {size}: the cosignature by {key.name} does not match its "
                          "listed time or key")
        label = key.name
        if pins is not None and key not in pins:
            label = f"{key.name} (key {key.id.hex()}, not one you trust)"
        best[label] = max(best.get(label, 0), size)
    return best


def trusted_note(text: str) -> str:
    """The signed note of a trusted-checkpoint file. A saved file may end with one newline after the note's
    own (`print(note)`, `jq -r .note`); the API's JSON is refused, saying what to pass instead."""
    if text.lstrip().startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        field = next((f for f in ("note", "checkpoint") if isinstance(doc, dict) and f in doc), None)
        if doc is not None:
            what = f"the text of its `{field}` field" if field else "the checkpoint's signed note itself"
            raise Invalid(
                "this is JSON (an API answer?), not a signed checkpoint note: pass " + what + ", e.g. `curl "
                "-H 'Authorization: Bearer TOKEN' URL/inspector/checkpoints/latest/note > trusted.note` or "
                f"`jq -j .{field or 'note'} answer.json > trusted.note`"
            )
    if text.endswith("\n\n") and not text.endswith("\n\n\n"):
        return text[:-1]
    return text


def _trusted(text: str, origin: str, keys: list[Key], by_size: dict[int, _Checkpoint]) -> Head:
    try:
        note = parse_note(trusted_note(text))
        head = parse_head(note.text)
        verify_signed(note, keys)
    except Invalid as e:
        raise Invalid(f"your trusted checkpoint: {e}") from None
    if head.origin != origin:
        raise Invalid(f"your trusted checkpoint is for log {head.origin!r}, this export for {origin!r}")
    same = by_size.get(head.size)
    if same is not None and same.head.root != head.root:
        raise Invalid(f"the log signed two different roots for size {head.size}: your trusted checkpoint and "
                      "the exported one. The history was rewritten (a fork)")
    return head


def _writer_key(m: dict[str, Any], pin: Key | None, v: Verdict) -> Key | None:
    """The writer key to check signatures with: the pinned one (the export's must agree), else the
    export's; None for an export from before writer signatures (a warning, or refused when pinned)."""
    stated = m.get("writer_key")
    if stated is None:
        if pin is not None:
            raise Invalid("you pinned a writer key but the export holds no writer signatures")
        v.warnings.append("the export holds no writer signatures (made before writer signatures?)")
        return None
    exported = parse_vkey(stated)
    if pin is not None and exported != pin:
        raise Invalid(f"the export's writer key {exported.vkey()} is not the one you pinned ({pin.vkey()})")
    v.writer = exported.vkey() + (" (pinned)" if pin else " (the export's; pin it with --writer-key)")
    return exported


def _within(when: str, start: str, end: str | None) -> bool:
    t = datetime.fromisoformat(when)
    return datetime.fromisoformat(start) <= t and (end is None or t <= datetime.fromisoformat(end))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
