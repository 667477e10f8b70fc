"""The ledger's verifiable-log service: tree, checkpoints, proofs, cosignatures and a full audit of the store.

`Transparency` is what the API and the scripts call. It keeps the Merkle tree in step with the chain,
signs checkpoints (every N events or T seconds, and on demand), serves inclusion and consistency proofs
from stored subtree hashes, hands witnesses what they need to cosign, stores their cosignatures, and
re-derives everything from the events to audit the live store. Formats: docs/merkle-and-checkpoints.md.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, inspect, select

from ledger.chain import encode_event
from ledger.checkpoints import (
    CHECKPOINTS_TABLE,
    COSIGNATURES_TABLE,
    CheckpointStore,
    Cosignature,
    StoredCheckpoint,
    checkpoints_table,
)
from ledger.config import Settings
from ledger.db import open_engine, writing
from ledger.errors import InvalidInput, LedgerError
from ledger.keys import KEYS_TABLE, KeyRing, LogKey, keys_table
from ledger.log_answers import (
    CheckpointView,
    ConsistencyProof,
    CosignatureRefused,
    InclusionProof,
    LogReport,
    NotYetCheckpointed,
    WitnessRequest,
)
from ledger.merkle import (
    Frontier,
    MerkleStore,
    consistency_ranges,
    inclusion_ranges,
    leaf_hash,
)
from ledger.notes import (
    COSIGNATURE_V1,
    Checkpoint,
    NoteError,
    VerifierKey,
    parse_checkpoint,
    parse_note,
    parse_vkey,
    sign_checkpoint,
    verify_cosignature,
    verify_log_signature,
)
from ledger.recorders import ChainReader
from ledger.verify import Helpers, verify_chain

log = logging.getLogger(__name__)


class Transparency:
    """The verifiable log over one ledger store."""

    def __init__(
        self,
        reader: ChainReader,
        engine: Engine,
        *,
        origin: str,
        keys_dir: Path,
        every_events: int = 1000,
        every_seconds: float = 300.0,
        poll_seconds: float = 5.0,
    ) -> None:
        if every_events < 1 or every_seconds <= 0:
            raise InvalidInput("checkpoints need every_events >= 1 and every_seconds > 0", field="settings")
        self.reader = reader
        self.engine = engine
        self.origin = origin
        self.tree = MerkleStore(engine)
        self.keys = KeyRing(engine, keys_dir, origin)
        self.checkpoints = CheckpointStore(engine)
        self.every_events = every_events
        self.every_seconds = every_seconds
        self.poll_seconds = poll_seconds
        self._closers: list[Callable[[], None]] = [engine.dispose]

    @classmethod
    def for_reader(cls, reader: ChainReader, settings: Settings) -> Transparency:
        """The log over `reader` (e.g. `ledger.chain`), in the store `settings.database_url` names."""
        engine = open_engine(settings.database_url)
        try:
            origin = log_origin(engine, settings)
        except LedgerError:
            engine.dispose()
            raise
        return cls(
            reader,
            engine,
            origin=origin,
            keys_dir=settings.keys_dir,
            every_events=settings.checkpoint_every_events,
            every_seconds=settings.checkpoint_every_seconds,
            poll_seconds=settings.checkpoint_poll_seconds,
        )

    @classmethod
    def open(cls, settings: Settings) -> Transparency:
        """Open the ledger store itself (for scripts); `close()` closes both."""
        from ledger.application import Ledger

        ledger = Ledger.open(settings.database_url, keys_dir=settings.keys_dir)
        try:
            t = cls.for_reader(ledger.chain, settings)
        except LedgerError:
            ledger.close()
            raise
        t._closers.append(ledger.close)
        return t

    def close(self) -> None:
        for close in self._closers:
            close()

    # --- tree and checkpoints -------------------------------------------------------------------------

    def sync(self, progress: Callable[[int], None] | None = None) -> int:
        """Extend the tree over every chained event; return its size."""
        return self.tree.sync(self.reader, progress=progress)

    def checkpoint_after_release(self, recorded: Any) -> None:
        """Sign the head at once after a QA release (`Ledger.on_release`), so the release is covered by a
        signature; the release is recorded either way, so a missing signing key is only logged."""
        try:
            made = self.checkpoint()
        except LedgerError as e:
            log.warning("no checkpoint after the QA release: %s", e.message)
            return
        log.info("checkpoint %d signed after a QA release", made.size)

    def checkpoint(self) -> CheckpointView:
        """Sign the current tree head now (on demand); the newest checkpoint if the head is already signed."""
        size = self.sync()
        for _attempt in range(3):
            key, private = self.keys.signer()
            created_at = _now()
            with writing(self.engine, CHECKPOINTS_TABLE) as conn:
                if _active_key_id(conn, self.origin) != key.key_id:
                    continue  # rotated meanwhile: sign with the new key
                latest = self.checkpoints.latest(conn)
                if latest is not None and latest.size >= size:
                    return self.view(latest)
                if latest is not None:
                    self._require_extends(latest)
                head = Checkpoint(self.origin, size, self.tree.root(size))
                note = sign_checkpoint(head, key.name, private)
                stored = StoredCheckpoint(size, self.origin, head.root, key.key_id, note.render(), created_at)
                self.checkpoints.add(conn, stored)
            log.info("checkpoint %d signed with key %s", size, key.key_id)
            return CheckpointView(stored, ())
        raise InvalidInput("the signing key kept changing; try again", field="key")

    def due(self, now: datetime | None = None) -> bool:
        """Whether the policy wants a checkpoint: N new events, or T seconds since the last and new events."""
        size = self.tree.size()
        latest = self.checkpoints.latest()
        if latest is None:
            return size > 0
        fresh = size - latest.size
        age = ((now or datetime.now(UTC)) - datetime.fromisoformat(latest.created_at)).total_seconds()
        return fresh >= self.every_events or (fresh > 0 and age >= self.every_seconds)

    def maybe_checkpoint(self, now: datetime | None = None) -> CheckpointView | None:
        """Sync the tree and sign a checkpoint if the policy says one is due."""
        self.sync()
        return self.checkpoint() if self.due(now) else None

    def next_checkpoint_due(self, now: datetime | None = None) -> datetime | None:
        """By when the policy signs the events not yet covered, if a watcher polls every `poll_seconds`:
        at once after N waiting events or when there is no checkpoint yet, else T seconds after the newest
        one. None without a signing key (nothing will be signed)."""
        if self.keys.active() is None:
            return None
        now = now or datetime.now(UTC)
        latest = self.checkpoints.latest()
        due = now
        if latest is not None and self.reader.head()[0] - latest.size < self.every_events:
            due = max(now, datetime.fromisoformat(latest.created_at) + timedelta(seconds=self.every_seconds))
        return due + timedelta(seconds=self.poll_seconds)

    def watch(self, stop: threading.Event, poll_seconds: float = 5.0) -> None:
        """Keep signing checkpoints by the policy until `stop` is set."""
        while not stop.is_set():
            made = self.maybe_checkpoint()
            if made is not None:
                log.info("checkpoint %d", made.size)
            stop.wait(poll_seconds)

    def _require_extends(self, latest: StoredCheckpoint) -> None:
        """Never sign a head the last signed one is not a prefix of (the stored tree must agree with it)."""
        if self.tree.root(latest.size) != latest.root:
            raise LedgerError(
                f"the stored tree no longer has the root signed at size {latest.size}; "
                "refusing to sign an inconsistent checkpoint"
            )

    # --- reading checkpoints ---------------------------------------------------------------------------

    def view(self, checkpoint: StoredCheckpoint) -> CheckpointView:
        return CheckpointView(checkpoint, tuple(self.checkpoints.cosignatures(checkpoint.size)))

    def latest(self) -> CheckpointView | None:
        """The newest checkpoint with its cosignatures."""
        cp = self.checkpoints.latest()
        return None if cp is None else self.view(cp)

    def get(self, size: int) -> CheckpointView:
        """The checkpoint of `size` with its cosignatures (CheckpointNotFound otherwise)."""
        return self.view(self.checkpoints.get(size))

    def list_checkpoints(self, *, before: int = -1, limit: int = 50) -> list[CheckpointView]:
        """Checkpoints newest first, `limit` of them, of sizes below `before` (all when -1)."""
        return [self.view(cp) for cp in self.checkpoints.page(after=before, limit=limit, newest_first=True)]

    # --- proofs ---------------------------------------------------------------------------------------

    def inclusion_proof(self, seq: int, size: int | None = None) -> InclusionProof:
        """Event `seq` in the tree of `size` leaves (default: the newest checkpoint's size; NotYetCheckpointed
        if that does not cover the event yet)."""
        size = self._covering_size(seq) if size is None else size
        if not 1 <= seq <= size:
            raise InvalidInput(f"event {seq} is not in a tree of {size} events", field="seq")
        # leaf, root and path in one query of the stored subtrees
        leaf, root, *path = self.tree.range_hashes(
            [(seq - 1, seq), (0, size), *inclusion_ranges(seq - 1, size)], size
        )
        return InclusionProof(seq, size, leaf, tuple(path), root)

    def consistency_proof(self, old: int, new: int | None = None) -> ConsistencyProof:
        """The tree of `old` leaves is a prefix of the one of `new` (default: newest checkpoint's size)."""
        new = self._proof_size(new)
        if not 0 <= old <= new:
            raise InvalidInput(f"no consistency proof from size {old} to size {new}", field="size")
        old_root, new_root, *path = self.tree.range_hashes(
            [(0, old), (0, new), *consistency_ranges(old, new)], new
        )
        return ConsistencyProof(old, new, old_root, new_root, tuple(path))

    def proof_bundle(self, seq: int, size: int | None = None) -> dict[str, Any]:
        """One event with what it takes to check it alone: canonical bytes, inclusion path, checkpoint."""
        view = self.get(size if size is not None else self._covering_size(seq))
        proof = self.inclusion_proof(seq, view.size)
        canonical = self._canonical(seq)
        if leaf_hash(canonical) != proof.leaf_hash:
            raise LedgerError(f"event {seq} no longer matches its leaf in the tree", seq=seq)
        return {
            "format": "lotline-proof-bundle/1",
            "origin": self.origin,
            "event": canonical.decode("utf-8"),
            **proof.as_dict(),
            "checkpoint": view.note(),
        }

    def _covering_size(self, seq: int) -> int:
        """The newest checkpoint's size if it covers event `seq`; why not and when it will otherwise."""
        latest = self.checkpoints.latest()
        if latest is not None and 1 <= seq <= latest.size:
            return latest.size
        events = self.reader.head()[0]
        if not 1 <= seq <= events:
            raise InvalidInput(f"event {seq} is not in the log, which holds {events} events", field="seq")
        policy = f"every {self.every_events} events, or {self.every_seconds:g} s after the last checkpoint"
        signed = latest.size if latest is not None else 0
        raise NotYetCheckpointed(seq, signed, events, self.next_checkpoint_due(), policy)

    def _proof_size(self, size: int | None) -> int:
        if size is not None:
            return size
        latest = self.checkpoints.latest()
        if latest is None:
            raise InvalidInput("no checkpoint has been signed yet; give a tree size", field="size")
        return latest.size

    def _canonical(self, seq: int) -> bytes:
        for row in self.reader.iter_chain(after_seq=seq - 1, page=1):
            if row.seq == seq and row.state is not None and row.topic is not None:
                return encode_event(row.seq, row.originator_id, row.originator_version, row.topic, row.state)
            break
        raise InvalidInput(f"event {seq} is not in the store", field="seq")

    # --- witnesses ------------------------------------------------------------------------------------

    def witness_request(self, old: int) -> WitnessRequest:
        """The newest checkpoint and the consistency proof from a witness's `old` size to it."""
        latest = self.checkpoints.latest()
        if latest is None:
            raise InvalidInput("no checkpoint has been signed yet", field="size")
        proof: list[bytes] = []
        if 0 < old <= latest.size:
            proof = self.tree.consistency_proof(old, latest.size)
        return WitnessRequest(old, tuple(proof), latest.note)

    def add_cosignature(self, cosigned_note: str, witness: VerifierKey | str) -> Cosignature:
        """Verify a witness's cosignature on one of our checkpoints and store it (idempotent). The
        witness key (a `VerifierKey`, or its text `name+keyid+base64`) must be a cosignature/v1 key."""
        if isinstance(witness, str):
            witness = parse_vkey(witness)
        if witness.sig_type != COSIGNATURE_V1:
            raise InvalidInput("a witness key has type 0x04 (cosignature/v1)", field="witness_key")
        try:
            note = parse_note(cosigned_note)
            head = parse_checkpoint(note.text)
        except NoteError as e:
            raise CosignatureRefused(f"not a cosigned checkpoint: {e.message}") from None
        stored = self.checkpoints.get(head.size)
        if parse_note(stored.note).text != note.text:
            raise CosignatureRefused(
                f"the witness cosigned a different tree head for size {head.size} than the one we signed",
                size=head.size,
            )
        sigs = note.signed_by(witness)
        if not sigs:
            raise CosignatureRefused(
                f"the note carries no cosignature by {witness.name} ({witness.key_id.hex()})"
            )
        received = []
        with writing(self.engine, COSIGNATURES_TABLE) as conn:
            for sig in sigs:
                try:
                    when = verify_cosignature(note.text, sig, witness)
                except NoteError as e:
                    raise CosignatureRefused(e.message) from None
                c = Cosignature(
                    head.size,
                    witness.name,
                    witness.key_id.hex(),
                    when,
                    witness.public_key,
                    sig.line().rstrip("\n"),
                    _now(),
                )
                self.checkpoints.add_cosignature(conn, c)
                received.append(c)
        return received[-1]

    # --- auditing the live store ----------------------------------------------------------------------

    def verify(
        self,
        progress: Callable[[int], None] | None = None,
        writer_key: VerifierKey | None = None,
        helpers: Helpers | None = None,
    ) -> LogReport:
        """Everything an inspector checks, in one pass over the events: the chain, the writer's signature
        over it, the Merkle leaves and the root at each checkpoint size; then every checkpoint's signature
        and size (a tail cut off) and every cosignature. `writer_key` and `helpers`: as `verify_chain`."""
        keys = self.keys.all()
        checkpoints = list(self.checkpoints.iter_all())
        tree = _TreeAudit(self.tree.leaves(), {cp.size: cp.root for cp in checkpoints})
        try:
            chain = verify_chain(self.reader, progress, writer_key, on_leaves=tree.push, helpers=helpers)
            if not chain.ok:
                return LogReport(False, chain.count, 0, 0, chain.describe(), chain=chain)
            tree.finish(chain.count)
            for cp in checkpoints:
                _check_checkpoint(cp, self.origin, keys, chain.count)
            cosigs = self._check_cosignatures(checkpoints)
        except _AuditFailure as f:
            return LogReport(False, tree.count, len(checkpoints), 0, str(f))
        notes = []
        covered = checkpoints[-1].size if checkpoints else 0
        if covered < chain.count:
            notes.append(f"events {covered + 1}..{chain.count} are not yet covered by a signed checkpoint")
        return LogReport(True, chain.count, len(checkpoints), cosigs, None, tuple(notes), chain=chain)

    def _check_cosignatures(self, checkpoints: list[StoredCheckpoint]) -> int:
        bodies = {cp.size: parse_note(cp.note).text for cp in checkpoints}
        count = 0
        for c in self.checkpoints.iter_cosignatures():
            try:
                verify_cosignature(bodies[c.size], c.signature, c.verifier)
            except NoteError as e:
                raise _AuditFailure(
                    f"cosignature by {c.witness} on checkpoint {c.size}: {e.message}"
                ) from None
            count += 1
        return count


class _AuditFailure(Exception):
    pass


class _TreeAudit:
    """Fed each verified event's Merkle leaf: compares it with the stored one and the root at every
    checkpoint size with the signed root (a fork, or history rewritten and re-chained)."""

    def __init__(self, stored: Iterator[tuple[int, bytes]], roots: dict[int, bytes]) -> None:
        self.stored, self.roots, self.frontier, self.count = stored, roots, Frontier(), 0
        self.sizes = sorted(roots)
        if 0 in roots and roots[0] != Frontier().root():
            raise _AuditFailure("the checkpoint of size 0 does not hold the empty tree's root")

    def push(self, after: int, leaves: bytes) -> None:
        """The leaves of the events at positions `after` + 1, ... (32 bytes each)."""
        n = len(leaves) // 32
        kept = list(itertools.islice(self.stored, n))  # fewer when the stored tree is behind the chain
        m = len(kept)
        same = b"".join(h for _, h in kept) == leaves[: 32 * m]
        if not same or [i for i, _ in kept] != list(range(after, after + m)):
            bad = next(after + i + 1 for i, kept_leaf in enumerate(kept)
                       if kept_leaf != (after + i, leaves[32 * i : 32 * i + 32]))
            raise _AuditFailure(f"event {bad}: the stored Merkle leaf does not match the event")
        sizes = self.sizes
        signed = sizes[bisect.bisect_right(sizes, after) : bisect.bisect_right(sizes, after + n)]
        done = after
        for size in [*signed, after + n]:  # the leaves up to each signed size, then its root
            self.frontier.extend(leaves[32 * (done - after) : 32 * (size - after)])
            done = size
            if size in self.roots and self.frontier.root() != self.roots[size]:
                raise _AuditFailure(
                    f"the Merkle root of the first {size} events differs from the signed checkpoint {size}: "
                    f"an event up to {size} was changed after signing (a fork of the signed history)"
                )
        self.count = after + n

    def finish(self, count: int) -> None:
        if next(self.stored, None) is not None:
            raise _AuditFailure(f"the stored tree has more leaves than the {count} chained events")


class LogNameMismatch(LedgerError):
    """LOTLINE_LOG_NAME names another log than the one the store already signs: an origin never changes."""

    code = "log_name_mismatch"


def log_origin(engine: Engine, settings: Settings) -> str:
    """The origin (and key name) of the store's log: the one its checkpoints or keys already carry, else
    `settings.log_name`. The origin is signed text, so a store never changes it: an explicitly set
    LOTLINE_LOG_NAME that differs is refused, and the default applies to new stores only."""
    recorded = recorded_origin(engine)
    if recorded is None or recorded == settings.log_name:
        return settings.log_name
    if "log_name" in settings.model_fields_set:
        raise LogNameMismatch(
            f"this store's log is {recorded!r} (its checkpoints and keys are signed with that origin), "
            f"but LOTLINE_LOG_NAME is {settings.log_name!r}; an origin cannot change: unset it or set it "
            f"to {recorded!r}",
            field="log_name",
        )
    return recorded


def recorded_origin(engine: Engine) -> str | None:
    """The origin of the newest checkpoint, else the name of the newest log key; None in a new store."""
    tables = inspect(engine)
    with engine.connect() as conn:
        if tables.has_table(CHECKPOINTS_TABLE):
            c = checkpoints_table.c
            origin = conn.execute(select(c.origin).order_by(c.size.desc()).limit(1)).scalar()
            if origin is not None:
                return str(origin)
        if tables.has_table(KEYS_TABLE):
            k = keys_table.c
            name = conn.execute(select(k.name).order_by(k.valid_from.desc()).limit(1)).scalar()
            if name is not None:
                return str(name)
    return None


def _check_checkpoint(cp: StoredCheckpoint, origin: str, keys: list[LogKey], events: int) -> None:
    try:
        note = parse_note(cp.note)
        head = parse_checkpoint(note.text)
        signer = verify_log_signature(note, [k.verifier for k in keys])
    except NoteError as e:
        raise _AuditFailure(f"checkpoint {cp.size}: {e.message}") from None
    if (head.origin, head.size, head.root) != (origin, cp.size, cp.root):
        raise _AuditFailure(f"checkpoint {cp.size}: its signed text does not match its row")
    key = next(k for k in keys if k.verifier == signer)
    if not key.valid_at(cp.created_at):
        raise _AuditFailure(
            f"checkpoint {cp.size} was signed at {cp.created_at} by key {key.key_id}, "
            f"valid {key.valid_from} .. {key.valid_until}"
        )
    if cp.size > events:
        raise _AuditFailure(
            f"checkpoint {cp.size} was signed but the store holds only {events} events: "
            "the tail of the log was cut off"
        )


def _active_key_id(conn: Any, name: str) -> str | None:
    c = keys_table.c
    rows = conn.execute(select(c.key_id).where(c.valid_until.is_(None), c.name == name)).all()
    return rows[-1][0] if rows else None


def _now() -> str:
    return datetime.now(UTC).isoformat()
