"""What every read model shares: the tracking table, the batch writer that dispatches on event type,
rows staged in memory for one batch, and the position a query result is as fresh as.

Exactly once, without the library's tracking recorders: the eventsourcing `TrackingRecorder`s write
their row through the library's own connection (sqlite3 / psycopg pool), so they cannot share a
transaction with rows written through SQLAlchemy. We keep the same guarantee with our own table,
`projection_tracking(name, position)`: one row per read model, advanced by a compare-and-set
(`UPDATE ... WHERE name = :name AND position = :old`) in the very transaction that writes the batch's
rows. A crash anywhere rolls both back together; a second runner racing on the same batch finds the
position moved and rolls its batch back (`ProjectionConflict`), so no event is applied twice.

A read model that fails on an event stops alone: the same row records the event's position and the
error (`failed_position`, `failed_error`), for every process to see (`/ready`, `lotline project`),
until a runner applies that event after all (the record is cleared with the advance).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    select,
    update,
)

from ledger.errors import LedgerError
from projections.db import reading, select_in, upsert

Positioned = tuple[int, Any]
"""One decoded event (an eventsourcing domain event) with its position in the notification log."""

POSITION = BigInteger().with_variant(Integer, "sqlite")
"""A notification id as a primary key: on SQLite an INTEGER PRIMARY KEY is the rowid itself, where a
BIGINT key would need a separate index besides the rowid."""

tracking_metadata = MetaData()
tracking = Table(
    "projection_tracking",
    tracking_metadata,
    Column("name", String(64), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("schema", BigInteger, nullable=False),
    Column("failed_position", BigInteger, nullable=True),
    Column("failed_error", Text, nullable=True),
)


origin = Table(
    "projection_origin",
    tracking_metadata,
    Column("id", Integer, primary_key=True),
    Column("first_hash", LargeBinary, nullable=False),
)
"""Which ledger the read models were applied from: the chain hash of its first event (one row, written
before that event is applied). On SQLite the read models have a file of their own; a file left
beside another store (the store deleted and made anew, a copy of the store without it) is known by
it instead of answering, and skipping, positions of another ledger."""


def first_hash(conn: Connection) -> bytes | None:
    """The chain hash of the first event of the ledger the read models were applied from (None: none yet)."""
    found = conn.execute(select(origin.c.first_hash)).scalar()
    return bytes(found) if found is not None else None


def set_first_hash(conn: Connection, chain_hash: bytes) -> None:
    """Record, in the caller's transaction, the ledger the read models are applied from."""
    upsert(conn, origin, [{"id": 1, "first_hash": chain_hash}])


def foreign(conn: Connection, head: int, ledger_first_hash: bytes | None) -> str | None:
    """Why the read models in `conn` were not applied from the ledger whose chain has `head` events and
    starts with `ledger_first_hash`, or None when they were (or hold nothing yet)."""
    reached = max(positions(conn, schemas(conn)).values(), default=0)
    if reached > head:
        return f"they have applied {reached} events and the ledger holds {head}"
    recorded = first_hash(conn)
    if recorded is not None and recorded != ledger_first_hash:
        return "they were applied from a ledger whose first event is another"
    return None


class ProjectionError(LedgerError):
    """The read side cannot apply an event or answer as asked."""

    code = "projection_error"


class ProjectionConflict(ProjectionError):
    """Another runner applied this batch first; ours was rolled back and changed nothing."""

    code = "projection_conflict"

    def __init__(self, name: str, expected: int) -> None:
        super().__init__(
            f"projection {name} is no longer at position {expected}: another runner advanced it",
            projection=name, expected=expected,
        )


class ProjectionTimeout(ProjectionError):
    """The read side did not reach a position in time (or a read model it needs has failed)."""

    code = "projection_timeout"

    def __init__(self, wanted: int, reached: int, timeout: float, failed: Sequence[Failure] = ()) -> None:
        why = "".join(f"; {f.describe()}" for f in failed)
        super().__init__(
            f"the read models reached position {reached}, not {wanted}, within {timeout} s{why}",
            wanted=wanted, reached=reached, timeout=timeout,
            failed=[f.as_dict() for f in failed],
        )


@dataclass(frozen=True, slots=True)
class Failure:
    """A read model stopped on an event: its name, the event's position, the error."""

    name: str
    position: int
    error: str

    def describe(self) -> str:
        """One line for a person: which read model stopped, where, why."""
        return f"read model {self.name} failed on the event at position {self.position}: {self.error}"

    def as_dict(self) -> dict[str, Any]:
        return {"read_model": self.name, "position": self.position, "error": self.error}


def positions(conn: Connection, names: Iterable[str]) -> dict[str, int]:
    """The tracking position of each named read model (0 when it has applied nothing)."""
    wanted = list(names)
    if not wanted:
        return {}
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = f"SELECT name, position FROM {tracking.name} WHERE name IN ({', '.join(mark for _ in wanted)})"
    # Through the driver: every answer reads its freshness, and SQLAlchemy's statement made it cost
    # as much as a kit's own row.
    found = {name: int(pos) for name, pos in conn.exec_driver_sql(sql, tuple(wanted))}
    return {name: found.get(name, 0) for name in wanted}


def advance(conn: Connection, name: str, old: int, new: int) -> None:
    """Move `name` from `old` to `new` in the caller's transaction, or raise `ProjectionConflict`.

    A failure recorded for an event up to `new` is cleared with it: that event is applied now."""
    result = conn.execute(
        update(tracking).where(tracking.c.name == name, tracking.c.position == old).values(
            position=new,
            failed_position=None,
            failed_error=None,
        )
    )
    if result.rowcount != 1:
        raise ProjectionConflict(name, old)


ERROR_TEXT_MAX = 2000
"""How much of an error's text a failure record keeps."""


def record_failure(conn: Connection, name: str, position: int, error: str) -> None:
    """Record in the caller's transaction that read model `name` stopped on the event at `position`."""
    conn.execute(
        update(tracking).where(tracking.c.name == name).values(
            failed_position=position, failed_error=error[:ERROR_TEXT_MAX]
        )
    )


def failures(conn: Connection) -> list[Failure]:
    """The read models that stopped on an event, by name."""
    rows = conn.execute(
        select(tracking.c.name, tracking.c.failed_position, tracking.c.failed_error)
        .where(tracking.c.failed_position.is_not(None))
        .order_by(tracking.c.name)
    )
    return [Failure(name, int(at), error or "") for name, at, error in rows]


def reset(conn: Connection, projection: Projection | type[Projection]) -> None:
    """Put a read model back to position 0 with its current schema (its tables are rebuilt); a failure
    recorded for it is cleared (the rebuild applies that event again)."""
    upsert(conn, tracking, [{"name": projection.name, "position": 0, "schema": projection.schema,
                             "failed_position": None, "failed_error": None}])


def schemas(conn: Connection) -> dict[str, int]:
    """The schema version each read model's tables were built with."""
    return {name: int(v) for name, v in conn.execute(select(tracking.c.name, tracking.c.schema))}


H = TypeVar("H", bound=Callable[..., None])


def on(*event_types: type) -> Callable[[H], H]:
    """Mark a `BatchWriter` method as the handler of these event classes."""

    def mark(handler: H) -> H:
        handler._lotline_handles = event_types  # type: ignore[attr-defined]
        return handler

    return mark


class BatchWriter:
    """Applies one batch of events to a read model's tables inside the caller's transaction.

    Subclasses mark handler methods with `@on(EventClass)`; events nobody handles are skipped
    (their position still advances). `prepare` may load rows the batch will touch in a few queries;
    `flush` writes what the handlers staged.
    """

    handlers: ClassVar[dict[type, Callable[..., None]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        found = dict(cls.handlers)
        for attr in vars(cls).values():
            for event_type in getattr(attr, "_lotline_handles", ()):
                found[event_type] = attr
        cls.handlers = found

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def apply(self, events: Sequence[Positioned]) -> None:
        """Dispatch every event of the batch to its handler, then write the staged rows."""
        self.prepare(events)
        for position, event in events:
            handler = self.handlers.get(type(event))
            if handler is not None:
                handler(self, position, event)
        self.flush()

    def prepare(self, events: Sequence[Positioned]) -> None:
        """Load what the batch will read, in bulk (default: nothing)."""

    def flush(self) -> None:
        """Write the rows staged by the handlers (default: nothing was staged)."""


class StagedRows:
    """Rows of one table for the length of a batch: loaded in bulk, changed in memory, upserted once.

    A kit changes state several times in a big batch; staging writes its row once, and loading the
    rows a batch needs with a few IN queries replaces a round trip per event.
    """

    def __init__(self, conn: Connection, table: Table) -> None:
        (key,) = table.primary_key.columns
        self.conn = conn
        self.table = table
        self.key = key.name
        self._rows: dict[Any, dict[str, Any] | None] = {}
        self._dirty: set[Any] = set()

    def load(self, keys: Iterable[Any]) -> None:
        """Fetch the rows for `keys` not seen yet in this batch."""
        wanted = {k for k in keys if k not in self._rows}
        if not wanted:
            return
        for row in select_in(self.conn, self.table, self.key, wanted):
            self._rows[row[self.key]] = row
        for k in wanted:
            self._rows.setdefault(k, None)

    def get(self, key: Any) -> dict[str, Any] | None:
        """The row for `key` (loaded on demand), or None when the table has none."""
        if key not in self._rows:
            self.load([key])
        return self._rows[key]

    def put(self, row: dict[str, Any]) -> None:
        """Stage a new or replaced row."""
        key = row[self.key]
        self._rows[key] = row
        self._dirty.add(key)

    def changed(self, key: Any) -> None:
        """Record that the row for `key`, changed in place, must be written."""
        self._dirty.add(key)

    def flush(self) -> None:
        """Upsert every staged or changed row (each holds a value for every column)."""
        rows = [row for row in (self._rows[key] for key in self._dirty) if row is not None]
        upsert(self.conn, self.table, rows)
        self._dirty.clear()


class Projection:
    """One read model: the tables it owns, the writer that feeds them, the queries it answers."""

    name: ClassVar[str]
    metadata: ClassVar[MetaData]
    writer: ClassVar[type[BatchWriter]]
    schema: ClassVar[int] = 1
    """Raise it when the tables change: `lotline db upgrade` then rebuilds this read model."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def depends_on(self) -> tuple[str, ...]:
        """Names of other read models whose tables this one's queries read."""
        return ()

    def apply(self, conn: Connection, events: Sequence[Positioned]) -> None:
        """Apply one batch of events in the caller's transaction."""
        self.writer(conn).apply(events)

    @classmethod
    def create_tables(cls, conn: Connection, *, indexes: bool = True) -> None:
        """Create this read model's tables where missing, with their secondary indexes or without."""
        cls.metadata.create_all(conn)
        for table in cls.metadata.sorted_tables:
            for index in table.indexes:
                if indexes:
                    index.create(conn, checkfirst=True)
                else:
                    index.drop(conn, checkfirst=True)

    @classmethod
    def drop_tables(cls, conn: Connection) -> None:
        """Drop this read model's tables (rebuild)."""
        cls.metadata.drop_all(conn)

    def as_of(self, conn: Connection) -> int:
        """The position this read model's answers are fresh to: the lowest of its own and its inputs'."""
        return min(positions(conn, (self.name, *self.depends_on)).values())


def location_table(name: str, metadata: MetaData) -> Table:
    """A read model's own copy of the locations (a few hundred rows) to name places in answers."""
    return Table(
        name, metadata,
        Column("location_id", Uuid, primary_key=True),
        Column("gln", String(13), nullable=False),
        Column("name", String(200), nullable=False),
        Column("kind", String(32), nullable=False),
        Column("country", String(2), nullable=False),
        Column("site_number", String(40)),
    )


def location_row(e: Any) -> dict[str, Any]:
    """The row of a `Location.Registered` event."""
    return {"location_id": e.originator_id, "gln": e.gln, "name": e.name, "kind": str(e.kind),
            "country": e.country, "site_number": e.site_number}


__all__ = [
    "BatchWriter",
    "Failure",
    "Positioned",
    "Projection",
    "ProjectionConflict",
    "ProjectionError",
    "ProjectionTimeout",
    "StagedRows",
    "advance",
    "failures",
    "location_row",
    "location_table",
    "on",
    "positions",
    "reading",
    "record_failure",
    "reset",
    "tracking",
    "tracking_metadata",
]
