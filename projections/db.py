"""The read side's database access: one SQLAlchemy engine on the read models' database.

Where the read models live (`read_side_url`): on PostgreSQL, in the event store's own database; on
SQLite, in a file of their own beside the store's (`<store>-read`, e.g. `lotline.db-read`). SQLite
lets one writer at a time into a file: with the read models in the store's file, every page the
projection worker applied held the lock a site's receipt was waiting for (tens of ms under load,
docs/benchmarks.md). Apart, the worker's writes and the ledger's never wait for each other. The file
holds only what is rebuilt from the events: deleting it (with its `-wal` and `-shm`) and running
`lotline db upgrade` starts the read models over from position 0.
The engine comes from `ledger.db.open_engine` (not durable: read models are rebuilt from events).
Two kinds of transaction, on SQLite and PostgreSQL alike:
- `writing(engine)`: one batch of events and its tracking rows. On SQLite it starts with
  `BEGIN IMMEDIATE`, taking the write lock up front, so a batch never fails half-way on a lock
  upgrade; the ledger's own writer waits for it (`ledger.db.begin_immediate`) like for any other writer.
- `reading(engine)`: a consistent snapshot for a query and the position it reports. On SQLite a
  deferred `BEGIN` (WAL snapshot from the first read); on PostgreSQL `REPEATABLE READ`, read only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from operator import itemgetter
from typing import Any
from uuid import UUID

from sqlalchemy import JSON, Column, Connection, Date, Engine, Label, String, Table, Uuid, type_coerce

from ledger import db

# SQLite's default limit on bound parameters is 32766; an IN list of this size stays far below it.
IN_CHUNK = 500


READ_SIDE_SUFFIX = "-read"
"""On SQLite, the read models' file is the store's file name with this added."""


def read_side_url(database_url: str) -> str:
    """Where the read models of the store at `database_url` live: the same PostgreSQL database; on
    SQLite, the file `<store>-read` beside the store's."""
    if db.sqlite_path(database_url) is None:
        return database_url
    return database_url + READ_SIDE_SUFFIX


def store_of(engine: Engine) -> str:
    """The URL of the store whose read models `engine` is on, as a user writes it, password hidden."""
    url = db.store_url(engine)
    return url.removesuffix(READ_SIDE_SUFFIX) if engine.dialect.name == "sqlite" else url


def open_engine(database_url: str) -> Engine:
    """An engine on the read models of the store at `database_url` (`sqlite:///...` or
    `postgresql://...`; see `read_side_url`).

    Not durable (see `ledger.db.open_engine`): a fifth of rebuild time on SQLite was the fsync per
    commit, and a batch lost to a power cut is applied again.
    """
    return db.open_engine(read_side_url(database_url), durable=False)


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A write transaction: commits when the block ends, rolls back if it raises."""
    with engine.connect() as conn, db.write_lock(conn).begin():
        yield conn


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A read-only snapshot: every statement in the block sees the same committed state."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin():
            yield conn


def chunks(items: Sequence[Any], size: int = IN_CHUNK) -> Iterator[Sequence[Any]]:
    """`items` in slices of at most `size` (IN lists, executemany pages)."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert `rows` (dicts with a value for every column; extra keys are ignored), one driver call."""
    _write(conn, table, rows, _INSERT)


def upsert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert `rows`, replacing any row with the same primary key."""
    _write(conn, table, rows, _REPLACE)


def add_counts(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Add each row's `n` to the row with the same key (a missing row counts from 0)."""
    _write(conn, table, rows, _ADD)


_INSERT, _REPLACE, _ADD = "insert", "replace", "add"


# Bulk writes are most of a rebuild, and SQLAlchemy's per-row parameter handling in executemany
# (5-15 us a row) cost more than the database's own work. So each statement is built once per table
# and the values go to the driver directly: on SQLite an executemany of tuples made with
# SQLAlchemy's own bind processors (the stored form stays what SQLAlchemy reads back); on
# PostgreSQL one INSERT ... SELECT FROM unnest(arrays), an array per column.
_STATEMENTS: dict[tuple[str, str, str], tuple[str, list[Any]]] = {}


def _write(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], mode: str) -> None:
    if not rows:
        return
    dialect = conn.dialect
    key = (dialect.name, table.name, mode)
    if key not in _STATEMENTS:
        _STATEMENTS[key] = _statement(table, dialect, mode)
    sql, converters = _STATEMENTS[key]
    values = _values_of(table)
    converted = [(i, f) for i, f in enumerate(converters) if f is not None]
    if dialect.name == "postgresql":
        arrays = [list(column) for column in zip(*map(values, rows), strict=True)]
        for i, convert in converted:
            arrays[i] = [convert(v) for v in arrays[i]]
        conn.exec_driver_sql(sql, tuple(arrays))
        return
    params = [values(r) for r in rows]
    if converted:
        params = [_converted(p, converted) for p in params]
    conn.exec_driver_sql(sql, params)


def _converted(values: tuple[Any, ...], converters: list[tuple[int, Any]]) -> tuple[Any, ...]:
    as_list = list(values)
    for i, convert in converters:
        as_list[i] = convert(as_list[i])
    return tuple(as_list)


def _values_of(table: Table) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """A row dict's values in column order (every column must have a key)."""
    names = [c.name for c in table.columns]
    if len(names) == 1:
        (name,) = names
        return lambda row: (row[name],)
    return itemgetter(*names)


def _statement(table: Table, dialect: Any, mode: str) -> tuple[str, list[Any]]:
    """The INSERT (or upsert) of every column of `table`, and a value converter per column."""
    names = [c.name for c in table.columns]
    keys = [c.name for c in table.primary_key.columns]
    on_conflict = ""
    if mode == _REPLACE:
        updates = ", ".join(f"{n} = excluded.{n}" for n in names if n not in keys)
        on_conflict = f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
    elif mode == _ADD:
        on_conflict = f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET n = {table.name}.n + excluded.n"
    into = f"INSERT INTO {table.name} ({', '.join(names)})"
    if dialect.name == "postgresql":
        # %b: binary parameters; psycopg's text array dumper escapes every element with a regex.
        arrays = ", ".join(f"%b::{c.type.compile(dialect=dialect)}[]" for c in table.columns)
        converters = [_json_text if isinstance(c.type, JSON) else None for c in table.columns]
        return f"{into} SELECT * FROM unnest({arrays}){on_conflict}", converters
    converters = [_sqlite_converter(c, dialect) for c in table.columns]
    return f"{into} VALUES ({', '.join('?' for _ in names)}){on_conflict}", converters


def _sqlite_converter(column: Any, dialect: Any) -> Any:
    """How SQLAlchemy stores a value of `column` on SQLite; ids directly as the 32-digit hex it uses."""
    if isinstance(column.type, Uuid):
        return _hex
    return column.type.dialect_impl(dialect).bind_processor(dialect)


def _hex(value: UUID | None) -> str | None:
    return None if value is None else value.hex


def _json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def select_in(conn: Connection, table: Table, column: str, keys: Iterable[Any]) -> list[dict[str, Any]]:
    """Rows (as dicts) of `table` whose `column` is one of `keys`.

    Read through the driver and converted here, like the writes above: SQLAlchemy's result
    processing was a third of the genealogy's rebuild time, spent re-reading kit rows.
    """
    wanted = list(keys)
    if not wanted:
        return []
    dialect = conn.dialect
    names = [c.name for c in table.columns]
    readers = [(i, r) for i, r in enumerate(_reader(c, dialect) for c in table.columns) if r is not None]
    head = f"SELECT {', '.join(names)} FROM {table.name} WHERE {column}"
    if dialect.name == "postgresql":
        rows = conn.exec_driver_sql(f"{head} = ANY(%b)", (wanted,)).all()
    else:
        to_key = _sqlite_converter(table.c[column], dialect)
        rows = []
        for part in chunks(wanted):
            marks = ", ".join("?" for _ in part)
            rows.extend(conn.exec_driver_sql(
                f"{head} IN ({marks})", tuple(to_key(k) if to_key else k for k in part)).all())
    found = []
    for row in rows:
        values = list(row)
        for i, read in readers:
            if values[i] is not None:
                values[i] = read(values[i])
        found.append(dict(zip(names, values, strict=True)))
    return found


def _reader(column: Any, dialect: Any) -> Callable[[Any], Any] | None:
    """How a stored value of `column` becomes the Python value SQLAlchemy would return."""
    if dialect.name == "postgresql":
        return None  # psycopg returns uuid, date and json values already converted
    if isinstance(column.type, Uuid):
        return UUID
    if isinstance(column.type, Date):
        return date.fromisoformat
    if isinstance(column.type, JSON):
        return json.loads
    return None


def as_text(column: Column[UUID]) -> Label[Any]:
    """An id column read as the driver gives it (hex text on SQLite), for `Ids` to convert: SQLAlchemy
    makes a UUID of every value of every row, most of a forward trace's 244 shipments' read time."""
    return type_coerce(column, String).label(column.name)


class Ids(dict[Any, UUID]):
    """Ids read with `as_text`, each distinct one made a UUID once (`ids[value]`)."""

    def __missing__(self, value: Any) -> UUID:
        made = value if isinstance(value, UUID) else UUID(value)
        self[value] = made
        return made

