"""Commit signatures: each write the ledger makes is signed with a key held outside the database.

The writer key is an Ed25519 key in the keys directory (`writer.key`, mode 0600, Go `note` signer
format; public half in `writer.vkey`), made on first use. Inside the transaction that appends a
commit's events, the recorder signs a statement naming the commit's last chain position and its
chain hash (which commits to every earlier event) and stores it in `ledger_writer_signatures`.
Before it signs, the writer requires the head it extends to carry a valid signature: it never
signs over events someone appended without the key, so by induction a valid signature at the head
vouches for every event below it and a verifier checks one signature, not one per commit.
The statement format is in docs/canonical-encoding.md ("Commit signatures").
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import BigInteger, Column, Engine, LargeBinary, MetaData, String, Table, select, text

from ledger.db import writing
from ledger.errors import LedgerError
from ledger.notes import ED25519, VerifierKey, parse_signer, parse_vkey, public_bytes, signer_text

SIGNATURES_TABLE = "ledger_writer_signatures"
EVENTS_TABLE, CHAIN_TABLE = "lotline_events", "ledger_chain"
WRITER_KEY_NAME = "lotline-writer"
WRITER_KEY_FILE = "writer.key"
WRITER_VKEY_FILE = "writer.vkey"
metadata = MetaData()
signatures_table = Table(
    SIGNATURES_TABLE,
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("chain_hash", LargeBinary(32), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("key_id", String(8), nullable=False),
    Column("signature", LargeBinary(64), nullable=False),
)
"""Made by migration 0002; the recorders write it in their own SQL, inside the append transaction."""

STATEMENT_HEADER = "lotline commit signature v1"
"""First line of every signed statement: separates these signatures from checkpoint signatures."""

COMMIT, ADOPTED = "commit", "adopted"
"""Kinds of statement: a commit signed as it was written; the head of a store made before writer
signatures, signed once by the `lotline db upgrade` that made the signatures table (what lay below it was
not signed as written)."""


class UnsignedHead(LedgerError):
    """The chain's head is not covered by a valid writer signature: events were appended without the
    writer key. The ledger refuses to sign over them; run `lotline verify`."""

    code = "unsigned_head"

    def __init__(self, head_seq: int, reason: str) -> None:
        self.head_seq = head_seq
        super().__init__(
            f"refusing to write: the chain's head (event {head_seq}) is not validly signed by the writer "
            f"key: {reason}; the store was written behind the ledger's back: run `lotline verify`"
        )


def statement(seq: int, chain_hash: bytes, kind: str) -> bytes:
    """The bytes a writer signature signs: header, kind, position, base64 chain hash, each a line."""
    return f"{STATEMENT_HEADER}\n{kind}\n{seq}\n{base64.b64encode(chain_hash).decode()}\n".encode()


@dataclass(frozen=True, slots=True)
class CommitSignature:
    """One stored row of `ledger_writer_signatures`."""

    seq: int
    chain_hash: bytes
    kind: str
    key_id: str
    signature: bytes

    def valid_for(self, key: VerifierKey) -> bool:
        """Whether this row is signed by `key` over its own position and hash."""
        if self.key_id != key.key_id.hex() or self.kind not in (COMMIT, ADOPTED):
            return False
        try:
            key.ed25519().verify(self.signature, statement(self.seq, self.chain_hash, self.kind))
        except InvalidSignature:
            return False
        return True


class WriterKey:
    """The writer's signing key, loaded from (or, on first use, created in) the keys directory."""

    def __init__(self, verifier: VerifierKey, private: Ed25519PrivateKey) -> None:
        self.verifier = verifier
        self._private = private
        self._key_id = verifier.key_id.hex()  # a hash of the key: made once, not on every commit
        self._vouched: tuple[int, bytes] | None = None

    @classmethod
    def load_or_create(cls, keys_dir: Path) -> WriterKey:
        """The key in `keys_dir/writer.key`; made there (0600, directory 0700) when absent."""
        keys_dir = Path(keys_dir)
        path = keys_dir / WRITER_KEY_FILE
        if not path.exists():
            keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            private = Ed25519PrivateKey.generate()
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process made it first: read theirs
            else:
                with os.fdopen(fd, "w") as f:
                    f.write(signer_text(WRITER_KEY_NAME, ED25519, private) + "\n")
                verifier = VerifierKey(WRITER_KEY_NAME, ED25519, public_bytes(private))
                (keys_dir / WRITER_VKEY_FILE).write_text(verifier.encode() + "\n")
        verifier, private = parse_signer(path.read_text())
        vkey_path = keys_dir / WRITER_VKEY_FILE
        if not vkey_path.exists():
            vkey_path.write_text(verifier.encode() + "\n")
        return cls(verifier, private)

    def sign(self, seq: int, chain_hash: bytes, kind: str = COMMIT) -> CommitSignature:
        """A signature row for the chain head (`seq`, `chain_hash`)."""
        signature = self._private.sign(statement(seq, chain_hash, kind))
        self._vouched = (seq, chain_hash)
        return CommitSignature(seq, chain_hash, kind, self._key_id, signature)

    def require_signed(
        self, head_seq: int, head_hash: bytes, newest: Callable[[], CommitSignature | None]
    ) -> None:
        """Refuse (UnsignedHead) unless the newest signature row (`newest()`, read only when this
        process has not itself signed or checked this very head) validly signs the head."""
        if head_seq == 0 or self._vouched == (head_seq, head_hash):
            return
        last = newest()
        if last is None:
            raise UnsignedHead(head_seq, "no writer signature is stored (a store from before writer "
                               "signatures is signed by `lotline db upgrade`)")
        if last.seq < head_seq:
            raise UnsignedHead(head_seq, f"events {last.seq + 1}..{head_seq} were appended without the key")
        if last.seq != head_seq or last.chain_hash != head_hash:
            raise UnsignedHead(head_seq, f"the newest signature, at {last.seq}, is for another chain: "
                               "events were removed or rewritten")
        if not last.valid_for(self.verifier):
            raise UnsignedHead(head_seq, f"the signature at {last.seq} does not verify with this key")
        self._vouched = (head_seq, head_hash)


def read_writer_vkey(keys_dir: Path) -> VerifierKey | None:
    """The writer's public key from `keys_dir/writer.vkey`, or None when there is none."""
    path = Path(keys_dir) / WRITER_VKEY_FILE
    return parse_vkey(path.read_text().strip()) if path.exists() else None


def adopt_head(engine: Engine, keys_dir: Path) -> CommitSignature | None:
    """Sign the head of a store that holds events but no writer signature (made before writer
    signatures), once, as `adopted`: what lies below was not signed when written, and the statement
    says so. None when there is nothing to adopt. Run by `lotline db upgrade`."""
    with writing(engine, EVENTS_TABLE) as conn:
        if conn.execute(select(signatures_table.c.seq).limit(1)).first() is not None:
            return None
        newest = f"SELECT seq, chain_hash FROM {CHAIN_TABLE} ORDER BY seq DESC LIMIT 1"
        head = conn.execute(text(newest)).first()
        if head is None:
            return None
        sig = WriterKey.load_or_create(keys_dir).sign(head[0], bytes(head[1]), ADOPTED)
        conn.execute(signatures_table.insert().values(
            seq=sig.seq, chain_hash=sig.chain_hash, kind=sig.kind, key_id=sig.key_id, signature=sig.signature
        ))
        return sig
