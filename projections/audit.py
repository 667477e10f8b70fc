"""Audit trail (21 CFR Part 11 / Annex 11): every event of any entity, in order, with who, when,
why, what changed, and where the event sits in the hash chain.

An entity's events are the events of its own stream. That is its whole history: the ledger records
an event on every aggregate a step changes (a formulation records `Consumed` on each input lot, a
shipment records `Shipped` on each kit). The chain position and hash are read at query time from
`ledger_chain`, joined by (stream, version), so the trail shows exactly what a verifier checks.

Blinding: the kit list (`allocation`) of a packaging event is left out of the stored changes; it
is read through the genealogy's unblinded queries only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    and_,
    select,
)

from ledger.errors import NotFound
from ledger.recorders import CHAIN_TABLE
from projections.base import POSITION, BatchWriter, Positioned, Projection
from projections.db import insert_rows, reading

metadata = MetaData()

entry = Table(
    "audit_entry", metadata,
    Column("position", POSITION, primary_key=True, autoincrement=False),
    Column("originator_id", Uuid, nullable=False),
    Column("originator_version", BigInteger, nullable=False),
    Column("aggregate", String(40), nullable=False),
    Column("event", String(40), nullable=False),
    Column("principal", String(100), nullable=False),
    Column("role", String(32), nullable=False),
    Column("name", String(200), nullable=False),
    Column("occurred_at", String(40), nullable=False),
    Column("recorded_at", String(40), nullable=False),
    Column("reason", String(2000)),
    Column("changes", Text, nullable=False),
    Index("audit_entry_stream", "originator_id", "originator_version", unique=True),
)

# The ledger's chain table, read only (the ledger creates and writes it).
chain = Table(
    CHAIN_TABLE, MetaData(),
    Column("seq", BigInteger, primary_key=True),
    Column("originator_id", Uuid, nullable=False),
    Column("originator_version", BigInteger, nullable=False),
    Column("chain_hash", LargeBinary, nullable=False),
)

# Event attributes that are bookkeeping, or that would unblind the trial.
_NOT_CHANGES = {"audit", "timestamp", "originator_topic", "originator_id", "originator_version",
                "allocation"}


def _text(value: Any) -> str:
    """A value json cannot encode by itself (ids, dates, times, decimals) as text."""
    return value.isoformat() if isinstance(value, datetime | date) else str(value)


class _Writer(BatchWriter):
    def __init__(self, conn: Connection) -> None:
        super().__init__(conn)
        self.rows: list[dict[str, Any]] = []

    def apply(self, events: Sequence[Positioned]) -> None:
        """Every event is audited, whatever its type: no dispatch table."""
        for position, e in events:
            aggregate, _, name = type(e).__qualname__.rpartition(".")
            audit = e.audit
            self.rows.append({
                "position": position, "originator_id": e.originator_id,
                "originator_version": e.originator_version, "aggregate": aggregate, "event": name,
                "principal": audit["principal"], "role": audit["role"], "name": audit["name"],
                "occurred_at": audit["occurred_at"], "recorded_at": e.timestamp.isoformat(),
                "reason": audit.get("reason"),
                "changes": json.dumps({k: v for k, v in vars(e).items() if k not in _NOT_CHANGES},
                                      default=_text),
            })
        insert_rows(self.conn, entry, self.rows)
        self.rows.clear()


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One event: who (principal, role, printed name), when (occurred, recorded), why, what changed."""

    position: int
    version: int
    aggregate: str
    event: str
    principal: str
    role: str
    name: str
    occurred_at: datetime
    recorded_at: datetime
    reason: str | None
    changes: dict[str, Any]
    seq: int | None
    chain_hash: str | None


@dataclass(frozen=True, slots=True)
class Trail:
    """Every event of one entity, oldest first."""

    aggregate_id: UUID
    aggregate: str
    entries: tuple[AuditEntry, ...]
    as_of: int


class AuditTrail(Projection):
    """Who did what, when and why, to any entity, with each event's place in the hash chain."""

    name = "audit"
    metadata = metadata
    writer = _Writer

    def trail(self, aggregate_id: UUID) -> Trail:
        """Every event of the entity `aggregate_id`, in order, with chain seq and hash."""
        query = (
            select(entry, chain.c.seq, chain.c.chain_hash)
            .outerjoin(chain, and_(chain.c.originator_id == entry.c.originator_id,
                                   chain.c.originator_version == entry.c.originator_version))
            .where(entry.c.originator_id == aggregate_id)
            .order_by(entry.c.originator_version)
        )
        with reading(self.engine) as conn:
            as_of = self.as_of(conn)
            rows = conn.execute(query).mappings().all()
        if not rows:
            raise NotFound("entity", aggregate_id)
        return Trail(aggregate_id, rows[0]["aggregate"], tuple(
            AuditEntry(
                r["position"], r["originator_version"], r["aggregate"], r["event"], r["principal"],
                r["role"], r["name"], datetime.fromisoformat(r["occurred_at"]),
                datetime.fromisoformat(r["recorded_at"]), r["reason"], json.loads(r["changes"]), r["seq"],
                bytes(r["chain_hash"]).hex() if r["chain_hash"] is not None else None,
            )
            for r in rows
        ), as_of)
