"""The EPCIS query index: the chain's events in their blinded EPCIS form, found by what they name.

Tables: `epcis_event` (one row per EPCIS event: the chain position `seq` of the step it comes from and
its index `idx` within that step, its time, type, bizStep, disposition, bizLocation and JSON),
`epcis_event_epc` (each identifier an event names, with its role) and `epcis_index_position` (the last
chain seq indexed, and where and why the index stopped, if it did: `/ready` and `lotline project` say
so). The treatment allocation is never in them: only blinded events are handed in.

The EPCIS adapter (`epcis.query.Indexer`) maps the chain's steps to EPCIS events and hands them in as
plain `Entry` values, identifiers and CBV words already canonical; this read model stores them and
answers `EventQuery`s, knowing nothing of EPCIS beyond those fields. Not fed by the projection runner,
because an EPCIS event needs what the runner does not hand its writers: each step's chain position and
hash (the link back) and the identity of the aggregates it names (lots and kits by GTIN), read from the
ledger; one step (e.g. a thousand kits destroyed) must also stay one event across the runner's pages.
Exactly once all the same: the rows of a batch and the position move together in one transaction, by
compare-and-set on the position, as in `projections.base`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from projections.base import ERROR_TEXT_MAX, Failure

FAILURE_NAME = "epcis_index"
"""The index's name where read models' failures are listed (`/ready`, `lotline project`)."""

metadata = MetaData()
event_table = Table(
    "epcis_event",
    metadata,
    Column("seq", BigInteger, primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("event_id", String(200), nullable=False),
    Column("event_time", String(40), nullable=False),
    Column("type", String(40), nullable=False),
    Column("biz_step", String(200)),
    Column("disposition", String(200)),
    Column("biz_location", String(200)),
    Column("action", String(10)),
    # The reason of the event's error declaration ('' when it gives none); NULL: it declares none.
    Column("error_reason", String(200)),
    Column("body", JSON, nullable=False),
    Index("epcis_event_time", "event_time"),
    # Each value's events in ledger order: a page of a common bizStep reads 100 rows, not a sort of all.
    Index("epcis_event_step", "biz_step", "seq", "idx"),
    Index("epcis_event_id", "event_id"),
    Index("epcis_event_disposition", "disposition", "seq", "idx"),
    Index("epcis_event_location", "biz_location", "seq", "idx"),
    Index("epcis_event_type", "type", "seq", "idx"),
    Index("epcis_event_action", "action", "seq", "idx"),
    Index("epcis_event_error", "error_reason"),
)
epc_table = Table(
    "epcis_event_epc",
    metadata,
    Column("epc", String(300), primary_key=True),
    Column("role", String(16), primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("idx", Integer, primary_key=True),
    Index("epcis_epc_role", "role", "epc"),
)
position_table = Table(
    "epcis_index_position",
    metadata,
    Column("name", String(16), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    # Where the index stopped and why, until a sync moves it again (revision 0011).
    Column("failed_position", BigInteger, nullable=True),
    Column("failed_error", Text, nullable=True),
)


@dataclass(frozen=True, slots=True)
class Entry:
    """One EPCIS event to index: where its step sits in the chain, what it is, what it names."""

    seq: int
    idx: int
    event_id: str
    event_time: datetime
    type: str
    biz_step: str | None
    disposition: str | None
    biz_location: str | None
    body: dict[str, Any]
    names: tuple[tuple[str, str], ...]
    """(role, identifier) of everything the event names, each once."""
    action: str | None = None
    error_reason: str | None = None
    """The reason of the event's error declaration ('' when it gives none); None: it declares none."""


@dataclass(frozen=True, slots=True)
class Names:
    """A condition: the event names one of `identifiers` in one of `roles`."""

    identifiers: tuple[str, ...]
    roles: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Which events, from where, how many: values within a field are alternatives (OR), fields combine
    (AND); None asks nothing of that field."""

    after: tuple[Any, ...] | None = None
    """(seq, idx) of the last event already seen (with `by_time`: its stored event time first): the
    answer starts after it, in the order asked for; None: from the start."""
    from_time: datetime | None = None
    """Events at or after this time."""
    before_time: datetime | None = None
    """Events before this time."""
    biz_steps: tuple[str, ...] | None = None
    dispositions: tuple[str, ...] | None = None
    biz_locations: tuple[str, ...] | None = None
    event_ids: tuple[str, ...] | None = None
    types: tuple[str, ...] | None = None
    actions: tuple[str, ...] | None = None
    error_declared: bool | None = None
    """True: only events that declare an error; False: only events that do not."""
    error_reasons: tuple[str, ...] | None = None
    names: tuple[Names, ...] = ()
    by_time: bool = False
    """In event time order (ties in chain order) instead of chain order; `after` is then
    (event time, seq, idx) of the last event already seen."""
    descending: bool = False
    limit: int = 100


@dataclass(frozen=True, slots=True)
class Found:
    """One matching event: its position (seq, idx) and its EPCIS JSON."""

    seq: int
    idx: int
    body: dict[str, Any]
    event_time: str
    """As stored (UTC, to the microsecond): where a page in time order ends."""


class EpcisIndex:
    """The EPCIS index of one ledger store (its tables are made by `lotline db upgrade`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def position(self) -> int:
        """The last chain seq indexed (0 when nothing is)."""
        with self.engine.connect() as conn:
            seq = conn.execute(select(position_table.c.seq).where(position_table.c.name == "epcis")).scalar()
        return int(seq or 0)

    def failure(self) -> Failure | None:
        """Where and why the index stopped, as a read model's failure (`name` "epcis_index"): recorded by
        whichever process keeps it, cleared once it moves again."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(position_table.c.failed_position, position_table.c.failed_error)
                .where(position_table.c.name == "epcis", position_table.c.failed_position.is_not(None))
            ).first()
        return None if row is None else Failure(FAILURE_NAME, int(row[0]), row[1] or "")

    def record_failure(self, position: int, error: str) -> None:
        """Record that indexing the chain from `position` (the first position not indexed) failed."""
        with self.engine.begin() as conn:
            _insert_position(conn, seq=0)
            conn.execute(
                position_table.update().where(position_table.c.name == "epcis")
                .values(failed_position=position, failed_error=error[:ERROR_TEXT_MAX])
            )

    def clear_failure(self) -> None:
        """Forget a recorded failure: the index reached the head since."""
        with self.engine.begin() as conn:
            conn.execute(
                position_table.update()
                .where(position_table.c.name == "epcis", position_table.c.failed_position.is_not(None))
                .values(failed_position=None, failed_error=None)
            )

    def clear(self) -> None:
        """Forget every indexed event: the next sync indexes the chain from its start."""
        with self.engine.begin() as conn:
            for table in (epc_table, event_table, position_table):
                conn.execute(table.delete())

    def add(self, entries: Sequence[Entry], old: int, new: int) -> bool:
        """Index `entries` and move the position from `old` to `new` in one transaction; False (nothing
        written) if another process moved it first."""
        rows = [_row(e) for e in entries]
        epcs = [
            {"epc": epc, "role": role, "seq": e.seq, "idx": e.idx} for e in entries for role, epc in e.names
        ]
        with self.engine.begin() as conn:
            moved = conn.execute(
                position_table.update()
                .where(position_table.c.name == "epcis", position_table.c.seq == old)
                .values(seq=new, failed_position=None, failed_error=None)
            ).rowcount
            if not moved and (old != 0 or not _insert_position(conn, seq=new)):
                return False  # indexed meanwhile by another process: its rows stand
            if rows:
                conn.execute(event_table.insert(), rows)
            if epcs:
                conn.execute(epc_table.insert(), epcs)
        return True

    def events(self, query: EventQuery) -> list[Found]:
        """The events matching `query`, in the order it asks for, at most `query.limit` of them."""
        t = event_table
        keys = (t.c.event_time, t.c.seq, t.c.idx) if query.by_time else (t.c.seq, t.c.idx)
        where = _matching(query)
        if query.after is not None:
            seen = tuple_(*query.after)
            where.append(tuple_(*keys) < seen if query.descending else tuple_(*keys) > seen)
        order = [k.desc() for k in keys] if query.descending else list(keys)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.c.seq, t.c.idx, t.c.event_time, t.c.body)
                .where(*where)
                .order_by(*order)
                .limit(query.limit)
            ).all()
        return [Found(r.seq, r.idx, r.body, r.event_time) for r in rows]

    def values(self, kind: str, after: str | None, limit: int) -> list[str]:
        """The distinct values of `kind` the indexed events hold (`VALUE_KINDS`), in order, after `after`,
        at most `limit` of them."""
        column, roles = VALUE_KINDS[kind]
        source = event_table.c[column] if roles is None else epc_table.c.epc
        where: list[Any] = [source.is_not(None)]
        if roles is not None and 2 * len(roles) >= len(ROLES):
            # Most roles: read the identifiers in key order, leaving the others out (by the role index,
            # SQLite would sort a million identifiers to list the first hundred).
            where.append(epc_table.c.role.not_in([r for r in ROLES if r not in roles]))
        elif roles is not None:
            where.append(epc_table.c.role.in_(roles))
        if after is not None:
            where.append(source > after)
        with self.engine.connect() as conn:
            rows = conn.execute(select(source).where(*where).distinct().order_by(source).limit(limit)).all()
        return [str(r[0]) for r in rows]

    def count(self, query: EventQuery, cap: int) -> int:
        """How many events match `query` (its `after` and `limit` aside), counted up to `cap`."""
        t = event_table
        found = select(t.c.seq).where(*_matching(query)).limit(cap).subquery()
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(found)).scalar_one())


ROLES = ("epc", "input_epc", "output_epc", "parent", "read_point", "class", "input_class", "output_class")
"""Every role in which an event names an identifier (`epcis.query._roles`)."""

VALUE_KINDS: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "epcs": ("epc", ("epc", "input_epc", "output_epc", "parent")),
    "readPoints": ("epc", ("read_point",)),
    "bizSteps": ("biz_step", None),
    "bizLocations": ("biz_location", None),
    "dispositions": ("disposition", None),
}
"""What `EpcisIndex.values` lists: an event column, or the identifiers named in some roles."""


def _insert_position(conn: Connection, seq: int) -> bool:
    """Make the index's position row at `seq` unless one exists (another process may make it at the
    same moment: the loser's insert is skipped, not an error); whether this call made it."""
    insert = (sqlite_insert if conn.dialect.name == "sqlite" else postgresql_insert)(position_table)
    made = conn.execute(insert.values(name="epcis", seq=seq).on_conflict_do_nothing()).rowcount
    return bool(made)


def _matching(query: EventQuery) -> list[Any]:
    """The conditions of `query` on an event (not where it starts or how many)."""
    t = event_table
    where: list[Any] = []
    if query.from_time:
        where.append(t.c.event_time >= _stored(query.from_time))
    if query.before_time:
        where.append(t.c.event_time < _stored(query.before_time))
    for column, values in (
        (t.c.biz_step, query.biz_steps),
        (t.c.disposition, query.dispositions),
        (t.c.biz_location, query.biz_locations),
        (t.c.event_id, query.event_ids),
        (t.c.type, query.types),
        (t.c.action, query.actions),
    ):
        if values is not None:
            where.append(column.in_(values))
    if query.error_reasons is not None:
        where.append(_declaring(query.error_reasons))
    if query.error_declared is not None:
        declaring = _declaring(None)
        where.append(declaring if query.error_declared else ~declaring)
    where.extend(_naming(n) for n in query.names)
    return where


def _declaring(reasons: tuple[str, ...] | None) -> Any:
    """Events that declare an error (for one of `reasons`; None: any), found through the declarations'
    index: they are few, and SQLite without statistics would rather walk every event in order (a
    range, `>= ''`, which every reason meets, takes the index where `IS NOT NULL` does not)."""
    e = event_table.alias("declaring")
    found = select(e.c.seq, e.c.idx).where(
        e.c.error_reason >= "" if reasons is None else e.c.error_reason.in_(reasons)
    )
    return tuple_(event_table.c.seq, event_table.c.idx).in_(found)


def _row(e: Entry) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "idx": e.idx,
        "event_id": e.event_id,
        "event_time": _stored(e.event_time),
        "type": e.type,
        "biz_step": e.biz_step,
        "disposition": e.disposition,
        "biz_location": e.biz_location,
        "action": e.action,
        "error_reason": e.error_reason,
        "body": e.body,
    }


def _stored(at: datetime) -> str:
    """A time as the index stores and compares it: UTC, ISO 8601 to the microsecond (sorts as text)."""
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _naming(names: Names) -> Any:
    """Events that name one of `names.identifiers` in one of its roles, found from the identifiers (a
    correlated EXISTS walked every event and probed the identifiers once each: seconds on 1M events)."""
    e = epc_table
    named = select(e.c.seq, e.c.idx).where(e.c.epc.in_(names.identifiers), e.c.role.in_(names.roles))
    return tuple_(event_table.c.seq, event_table.c.idx).in_(named)


__all__ = ["VALUE_KINDS", "Entry", "EpcisIndex", "EventQuery", "Found", "Names"]
