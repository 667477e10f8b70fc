"""Audit trail (21 CFR Part 11 / Annex 11): every event of any entity, in order, with who, when,
why, what changed, and where the event sits in the hash chain.

An entity's events are the events of its own stream. That is its whole history: the ledger records
an event on every aggregate a step changes (a formulation records `Consumed` on each input lot, a
shipment records `Shipped` on each kit). The chain position and hash are read at query time from the
ledger's chain (`ChainReader.links_for`, by stream and version), so the trail shows exactly what a
verifier checks; the ledger's tables are not in the read models' database on SQLite.

Blinding: the kit list (`allocation`) of a packaging event is left out of the stored changes; it
is read through the genealogy's unblinded queries only.

Search (`AuditTrail.search`): by actor, role, event type, signature meaning, place, entity, late
entries and time range (occurred or recorded), each row with its chain position and hash. The places
an event concerns are the ids in its place fields (`PLACE_FIELDS`), and a location's own events.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    Index,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    func,
    select,
)

from ledger.errors import NotFound
from ledger.recorders import ChainReader, Link
from ledger.values import iso
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
    Column("meaning", String(40)),
    Column("late_entry", Boolean, nullable=False),
    Column("late_reason", String(2000)),
    Index("audit_entry_stream", "originator_id", "originator_version", unique=True),
    Index("audit_entry_principal", "principal", "position"),
    Index("audit_entry_recorded", "recorded_at"),
    Index("audit_entry_occurred", "occurred_at"),
)

place = Table(
    "audit_place", metadata,
    Column("place_id", Uuid, primary_key=True),
    Column("position", POSITION, primary_key=True, autoincrement=False),
)

PLACE_FIELDS = ("location_id", "site_id", "from_id", "to_id", "depot_id", "place_id", "places")
"""Event fields that name the places an event concerns: an id, or for `places` a list of ids (a user's
places) or a mapping keyed by place id (the places a recall reaches)."""

# Event attributes that are bookkeeping, or that would unblind the trial.
_NOT_CHANGES = {"audit", "timestamp", "originator_topic", "originator_id", "originator_version",
                "allocation"}


def _text(value: Any) -> str:
    """A value json cannot encode by itself (ids, dates, times, decimals) as text."""
    return value.isoformat() if isinstance(value, datetime | date) else str(value)


def _places(aggregate: str, e: Any) -> set[UUID]:
    found = {e.originator_id} if aggregate == "Location" else set()
    for name in PLACE_FIELDS:
        value = getattr(e, name, None)
        # one id, a list of ids, or (a recall's `places`) a mapping keyed by place id
        for item in value if isinstance(value, list | tuple | dict) else [value]:
            if item is not None:
                found.add(item if isinstance(item, UUID) else UUID(str(item)))
    return found


def _meaning(e: Any) -> str | None:
    signature = getattr(e, "signature", None)
    return signature.get("meaning") if isinstance(signature, dict) else None


class _Writer(BatchWriter):
    def __init__(self, conn: Connection) -> None:
        super().__init__(conn)
        self.rows: list[dict[str, Any]] = []
        self.places: list[dict[str, Any]] = []

    def apply(self, events: Sequence[Positioned]) -> None:
        """Every event is audited, whatever its type: no dispatch table."""
        for position, e in events:
            aggregate, _, name = type(e).__qualname__.rpartition(".")
            audit = e.audit
            self.rows.append({
                "position": position, "originator_id": e.originator_id,
                "originator_version": e.originator_version, "aggregate": aggregate, "event": name,
                "principal": audit["principal"], "role": audit["role"], "name": audit["name"],
                "occurred_at": audit["occurred_at"], "recorded_at": iso(e.timestamp),
                "reason": audit.get("reason"),
                "changes": json.dumps({k: v for k, v in vars(e).items() if k not in _NOT_CHANGES},
                                      default=_text),
                "meaning": _meaning(e), "late_entry": bool(audit.get("late_entry")),
                "late_reason": audit.get("late_reason"),
            })
            self.places += [{"place_id": p, "position": position} for p in _places(aggregate, e)]
        insert_rows(self.conn, entry, self.rows)
        insert_rows(self.conn, place, self.places)
        self.rows.clear()
        self.places.clear()


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
    meaning: str | None = None
    """The meaning of the electronic signature the event carries, if it carries one."""
    late_entry: bool = False
    """Recorded longer after it happened than the late-entry window allowed (with `late_reason`)."""
    late_reason: str | None = None
    entity_id: UUID | None = None
    """The entity (stream) the event belongs to."""


@dataclass(frozen=True, slots=True)
class Trail:
    """Every event of one entity, oldest first."""

    aggregate_id: UUID
    aggregate: str
    entries: tuple[AuditEntry, ...]
    as_of: int


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """What an audit search asks for; every given criterion must hold. `event` is `Aggregate.Event`
    (`Lot.Released`) or the event's name alone (`Released`); times are inclusive `from`, exclusive `to`."""

    principal: str | None = None
    role: str | None = None
    event: str | None = None
    meaning: str | None = None
    place_id: UUID | None = None
    entity_id: UUID | None = None
    late_entry: bool | None = None
    occurred_from: datetime | None = None
    occurred_to: datetime | None = None
    recorded_from: datetime | None = None
    recorded_to: datetime | None = None


@dataclass(frozen=True, slots=True)
class AuditFound:
    """A page of the events an audit search found, in chain order, and how many there are in all."""

    total: int
    limit: int
    offset: int
    entries: tuple[AuditEntry, ...]
    as_of: int


class AuditTrail(Projection):
    """Who did what, when and why, to any entity, with each event's place in the hash chain."""

    name = "audit"
    metadata = metadata
    writer = _Writer
    schema = 2  # 2: signature meaning, late entries, places, search indexes

    def __init__(self, engine: Engine, chain: ChainReader) -> None:
        super().__init__(engine)
        self.chain = chain

    def search(self, query: AuditQuery, limit: int = 100, offset: int = 0) -> AuditFound:
        """The events matching `query`, oldest first, `limit` from `offset`, with chain seq and hash."""
        where = _criteria(query)
        counted = select(func.count()).select_from(entry).where(*where)
        rows_query = (
            select(entry)
            .where(*where)
            .order_by(entry.c.position)
            .limit(limit)
            .offset(offset)
        )
        with reading(self.engine) as conn:
            as_of = self.as_of(conn)
            total = int(conn.execute(counted).scalar_one())
            rows = conn.execute(rows_query).mappings().all()
        return AuditFound(total, limit, offset, self._entries(rows), as_of)

    def trail(self, aggregate_id: UUID) -> Trail:
        """Every event of the entity `aggregate_id`, in order, with chain seq and hash."""
        query = (
            select(entry)
            .where(entry.c.originator_id == aggregate_id)
            .order_by(entry.c.originator_version)
        )
        with reading(self.engine) as conn:
            as_of = self.as_of(conn)
            rows = conn.execute(query).mappings().all()
        if not rows:
            raise NotFound("entity", aggregate_id)
        return Trail(aggregate_id, rows[0]["aggregate"], self._entries(rows), as_of)

    def _entries(self, rows: Sequence[Any]) -> tuple[AuditEntry, ...]:
        """The rows as entries, each with its chain link (none for an event the chain lacks)."""
        keys = [(r["originator_id"], r["originator_version"]) for r in rows]
        links = {(link.stream, link.version): link for link in self.chain.links_for(keys)}
        return tuple(_entry(r, links.get(key)) for r, key in zip(rows, keys, strict=True))


def _entry(r: Any, link: Link | None) -> AuditEntry:
    return AuditEntry(
        r["position"], r["originator_version"], r["aggregate"], r["event"], r["principal"],
        r["role"], r["name"], datetime.fromisoformat(r["occurred_at"]),
        datetime.fromisoformat(r["recorded_at"]), r["reason"], json.loads(r["changes"]),
        link.seq if link is not None else None, link.chain_hash.hex() if link is not None else None,
        r["meaning"], bool(r["late_entry"]), r["late_reason"], r["originator_id"],
    )


def _criteria(q: AuditQuery) -> list[Any]:
    where: list[Any] = []
    if q.principal is not None:
        where.append(entry.c.principal == q.principal)
    if q.role is not None:
        where.append(entry.c.role == q.role)
    if q.event is not None:
        aggregate, _, name = q.event.rpartition(".")
        where.append(entry.c.event == name)
        if aggregate:
            where.append(entry.c.aggregate == aggregate)
    if q.meaning is not None:
        where.append(entry.c.meaning == q.meaning)
    if q.entity_id is not None:
        where.append(entry.c.originator_id == q.entity_id)
    if q.late_entry is not None:
        where.append(entry.c.late_entry.is_(q.late_entry))
    if q.place_id is not None:
        at = select(place.c.position).where(place.c.place_id == q.place_id)
        where.append(entry.c.position.in_(at))
    for column, start, end in (
        (entry.c.occurred_at, q.occurred_from, q.occurred_to),
        (entry.c.recorded_at, q.recorded_from, q.recorded_to),
    ):
        if start is not None:
            where.append(column >= iso(start))
        if end is not None:
            where.append(column < iso(end))
    return where


CSV_COLUMNS = (
    "seq", "chain_hash", "recorded_at", "occurred_at", "late_entry", "late_reason", "principal", "name",
    "role", "aggregate", "entity_id", "version", "event", "meaning", "reason", "changes",
)
"""The columns of an audit search exported as CSV (`lotline audit search --format csv`, `GET /audit`
with `format=csv`): each row names its chain position and hash, so it can be tied to the verified chain."""


def export_row(e: AuditEntry) -> dict[str, Any]:
    """One entry as an export row (`CSV_COLUMNS`, in order): times in ISO 8601, ids as text, changes as
    they were recorded; the CSV and the CLI's JSON are both made of these rows."""
    return {
        "seq": e.seq, "chain_hash": e.chain_hash, "recorded_at": e.recorded_at.isoformat(),
        "occurred_at": e.occurred_at.isoformat(), "late_entry": e.late_entry, "late_reason": e.late_reason,
        "principal": e.principal, "name": e.name, "role": e.role, "aggregate": e.aggregate,
        "entity_id": None if e.entity_id is None else str(e.entity_id), "version": e.version,
        "event": e.event, "meaning": e.meaning, "reason": e.reason, "changes": e.changes,
    }


def as_csv(entries: Sequence[AuditEntry]) -> str:
    """The entries as CSV (RFC 4180, a header row, `changes` as JSON text, no value as an empty cell)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for e in entries:
        row = export_row(e)
        row["late_entry"] = "yes" if e.late_entry else ""
        row["changes"] = json.dumps(e.changes, sort_keys=True, default=_text)
        writer.writerow(["" if row[c] is None else row[c] for c in CSV_COLUMNS])
    return out.getvalue()
