"""Signed checkpoints of the Merkle tree and the witness cosignatures they receive, in their own tables.

`ledger_checkpoints` keeps one row per signed tree head (size, root, signing key, the signed note, when);
`ledger_cosignatures` keeps each witness cosignature with the witness's public key, so an export carries
everything needed to check it. Both tables are only appended to.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    ForeignKey,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    func,
    select,
)

from ledger.errors import NotFound
from ledger.notes import COSIGNATURE_V1, Note, Signature, VerifierKey, parse_note

CHECKPOINTS_TABLE = "ledger_checkpoints"
COSIGNATURES_TABLE = "ledger_cosignatures"

metadata = MetaData()
checkpoints_table = Table(
    CHECKPOINTS_TABLE,
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("origin", String(200), nullable=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("key_id", String(8), nullable=False),
    Column("note", Text, nullable=False),
    Column("created_at", String(40), nullable=False),
)
cosignatures_table = Table(
    COSIGNATURES_TABLE,
    metadata,
    Column(
        "size", BigInteger, ForeignKey(f"{CHECKPOINTS_TABLE}.size"), primary_key=True, autoincrement=False
    ),
    Column("witness", String(200), primary_key=True),
    Column("key_id", String(8), primary_key=True),
    Column("timestamp", BigInteger, primary_key=True, autoincrement=False),
    Column("public_key", LargeBinary(32), nullable=False),
    Column("line", Text, nullable=False),
    Column("received_at", String(40), nullable=False),
)


class CheckpointNotFound(NotFound):
    def __init__(self, size: int) -> None:
        super().__init__("checkpoint of size", size)


@dataclass(frozen=True, slots=True)
class Cosignature:
    """A witness's cosignature of the checkpoint of `size`: who, with which key, when (POSIX seconds)."""

    size: int
    witness: str
    key_id: str
    timestamp: int
    public_key: bytes
    line: str
    received_at: str

    @property
    def verifier(self) -> VerifierKey:
        return VerifierKey(self.witness, COSIGNATURE_V1, self.public_key)

    @property
    def signature(self) -> Signature:
        return parse_note("x\n\n" + self.line + "\n").signatures[0]


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A signed tree head as stored: the note holds the log's signature line."""

    size: int
    origin: str
    root: bytes
    key_id: str
    note: str
    created_at: str

    def cosigned(self, cosignatures: Sequence[Cosignature]) -> str:
        """The note with the witnesses' cosignature lines after the log's signature (C2SP layout)."""
        note = parse_note(self.note)
        return note.with_signatures(c.signature for c in cosignatures).render()

    @property
    def parsed(self) -> Note:
        return parse_note(self.note)


class CheckpointStore:
    """Reads and appends checkpoint and cosignature rows."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def latest(self, conn: Any | None = None) -> StoredCheckpoint | None:
        """The checkpoint with the largest size, if any."""
        query = select(checkpoints_table).order_by(checkpoints_table.c.size.desc()).limit(1)
        rows = self._rows(query, conn)
        return _checkpoint(rows[0]) if rows else None

    def get(self, size: int) -> StoredCheckpoint:
        """The checkpoint of exactly `size` leaves, or CheckpointNotFound."""
        rows = self._rows(select(checkpoints_table).where(checkpoints_table.c.size == size))
        if not rows:
            raise CheckpointNotFound(size)
        return _checkpoint(rows[0])

    def first_at_or_above(self, size: int) -> StoredCheckpoint | None:
        """The smallest checkpoint whose size is at least `size`."""
        c = checkpoints_table.c
        rows = self._rows(select(checkpoints_table).where(c.size >= size).order_by(c.size).limit(1))
        return _checkpoint(rows[0]) if rows else None

    def page(
        self, *, after: int = -1, limit: int = 100, newest_first: bool = False
    ) -> list[StoredCheckpoint]:
        """Checkpoints in size order (or newest first), `limit` of them, after size `after`."""
        c = checkpoints_table.c
        query = select(checkpoints_table)
        if newest_first:
            query = query.where(c.size < after) if after >= 0 else query
            query = query.order_by(c.size.desc())
        else:
            query = query.where(c.size > after).order_by(c.size)
        return [_checkpoint(r) for r in self._rows(query.limit(limit))]

    def iter_all(self, up_to: int | None = None, page: int = 500) -> Iterator[StoredCheckpoint]:
        """Every checkpoint in size order (optionally only those of at most `up_to` leaves)."""
        after = -1
        while True:
            rows = self.page(after=after, limit=page)
            for cp in rows:
                if up_to is not None and cp.size > up_to:
                    return
                yield cp
            if len(rows) < page:
                return
            after = rows[-1].size

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(checkpoints_table)).scalar() or 0)

    def add(self, conn: Any, checkpoint: StoredCheckpoint) -> None:
        conn.execute(checkpoints_table.insert().values(**_checkpoint_fields(checkpoint)))

    def cosignatures(self, size: int) -> list[Cosignature]:
        """The cosignatures of the checkpoint of `size`, oldest first."""
        c = cosignatures_table.c
        rows = self._rows(select(cosignatures_table).where(c.size == size).order_by(c.timestamp, c.witness))
        return [_cosignature(r) for r in rows]

    def iter_cosignatures(self, up_to: int | None = None) -> Iterator[Cosignature]:
        """Every stored cosignature, by checkpoint size then time."""
        c = cosignatures_table.c
        query = select(cosignatures_table).order_by(c.size, c.timestamp, c.witness)
        if up_to is not None:
            query = query.where(c.size <= up_to)
        with self.engine.connect() as conn:
            for row in conn.execute(query).mappings():
                yield _cosignature(row)

    def add_cosignature(self, conn: Any, cosignature: Cosignature) -> bool:
        """Store a cosignature unless the same one is already stored; return whether it was new."""
        c = cosignatures_table.c
        exists = conn.execute(
            select(c.size).where(
                c.size == cosignature.size,
                c.witness == cosignature.witness,
                c.key_id == cosignature.key_id,
                c.timestamp == cosignature.timestamp,
            )
        ).first()
        if exists:
            return False
        conn.execute(cosignatures_table.insert().values(**_cosignature_fields(cosignature)))
        return True

    def _rows(self, query: Any, conn: Any | None = None) -> list[Any]:
        if conn is not None:
            return list(conn.execute(query).mappings())
        with self.engine.connect() as own:
            return list(own.execute(query).mappings())


def _checkpoint(m: Any) -> StoredCheckpoint:
    return StoredCheckpoint(m["size"], m["origin"], bytes(m["root"]), m["key_id"], m["note"], m["created_at"])


def _checkpoint_fields(cp: StoredCheckpoint) -> dict[str, Any]:
    return {
        "size": cp.size,
        "origin": cp.origin,
        "root": cp.root,
        "key_id": cp.key_id,
        "note": cp.note,
        "created_at": cp.created_at,
    }


def _cosignature(m: Any) -> Cosignature:
    return Cosignature(
        m["size"],
        m["witness"],
        m["key_id"],
        m["timestamp"],
        bytes(m["public_key"]),
        m["line"],
        m["received_at"],
    )


def _cosignature_fields(c: Cosignature) -> dict[str, Any]:
    return {
        "size": c.size,
        "witness": c.witness,
        "key_id": c.key_id,
        "timestamp": c.timestamp,
        "public_key": c.public_key,
        "line": c.line,
        "received_at": c.received_at,
    }
