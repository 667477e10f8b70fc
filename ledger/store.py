"""The event store's settings: one database URL becomes the eventsourcing library's environment.

The library never creates tables here (`CREATE_TABLE` is off): the schema is made and upgraded by
`lotline db upgrade` (`ledger.schema`), so a ledger opened on a store without it fails instead of
quietly making an empty one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal
from urllib.parse import unquote, urlsplit

from eventsourcing.persistence import InfrastructureFactory, OperationalError
from eventsourcing.sqlite import (
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteCursor,
    SQLiteDatastore,
    SQLiteTransaction,
)
from eventsourcing.sqlite import SQLiteFactory as LibrarySQLiteFactory
from eventsourcing.utils import Environment

from ledger.db import (
    BUSY_TIMEOUT_SECONDS,
    LEDGER_AUTOCHECKPOINT_PAGES,
    MAX_OVERFLOW,
    POOL_SIZE,
    POOL_TIMEOUT,
    begin_immediate,
    sqlite_path,
)
from ledger.errors import InvalidInput
from ledger.recorders import ChainReader


class _WriteTransaction(SQLiteTransaction):
    """The library's transaction, begun with the write lock taken at once, as soon as it is free
    (`ledger.db.begin_immediate`), instead of a deferred `BEGIN` whose first INSERT waits for it in
    SQLite's busy handler."""

    def __enter__(self) -> SQLiteCursor:
        try:
            begin_immediate(self.connection._sqlite_conn)  # the library keeps its driver connection private
        except sqlite3.OperationalError as e:
            raise OperationalError(e) from e  # as the library's transaction raises it on commit
        return self.connection.cursor()


class _Pool(SQLiteConnectionPool):
    """The library's pool, its connections set to copy the write-ahead log back into the store only
    when it has grown past `LEDGER_AUTOCHECKPOINT_PAGES` (`ledger.db.WalCheckpointer` does it first)."""

    def _create_connection(self) -> SQLiteConnection:
        made = super()._create_connection()
        made._sqlite_conn.execute(f"PRAGMA wal_autocheckpoint = {LEDGER_AUTOCHECKPOINT_PAGES}")
        return made


class _Datastore(SQLiteDatastore):
    def __init__(self, db_name: str, *, lock_timeout: int | None, pool_size: int, max_overflow: int,
                 pool_timeout: float, single_row_tracking: bool, originator_id_type: Literal["uuid", "text"]):
        super().__init__(
            db_name, single_row_tracking=single_row_tracking, originator_id_type=originator_id_type
        )
        self.pool.close()  # made by the library, never used: no connection yet
        self.pool = _Pool(db_name=db_name, lock_timeout=lock_timeout, pool_size=pool_size,
                          max_overflow=max_overflow, pool_timeout=pool_timeout)

    @contextmanager
    def transaction(self, *, commit: bool) -> Iterator[SQLiteCursor]:
        if not commit:
            with super().transaction(commit=False) as curs:
                yield curs
            return
        with self.get_connection(commit=True) as conn, _WriteTransaction(conn, commit=True) as curs, curs:
            yield curs


class SQLiteFactory(LibrarySQLiteFactory):
    """The library's SQLite factory with its pool sized like every other engine (`ledger.db`): the
    library reads no pool settings for SQLite and keeps 5 + 10 connections with a 5 s timeout, which
    40 request threads exhausted (500s). Its write transactions take the lock as `_WriteTransaction`
    says."""

    def __init__(self, env: object) -> None:
        super().__init__(env)  # type: ignore[arg-type]
        made = self.datastore
        self.datastore = _Datastore(
            db_name=made.pool.db_name, lock_timeout=made.pool.lock_timeout, pool_size=POOL_SIZE,
            max_overflow=MAX_OVERFLOW, pool_timeout=POOL_TIMEOUT,
            single_row_tracking=made.single_row_tracking, originator_id_type=made.originator_id_type,
        )
        made.close()


APPLICATION_NAME = "Lotline"
"""The ledger application's name, which the library's PostgreSQL recorder makes its table's name of
(`lotline_events`): a reader of the chain without the application names itself the same."""

SQLITE_RECORDER = "ledger.recorders:ChainedSQLiteApplicationRecorder"
POSTGRES_RECORDER = "ledger.recorders:ChainedPostgresApplicationRecorder"


def store_env(database_url: str) -> dict[str, str]:
    """The eventsourcing environment for `sqlite:///path` or `postgresql://user:pw@host:port/db`."""
    parts = urlsplit(database_url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme == "sqlite":
        return {
            "PERSISTENCE_MODULE": "ledger.store:SQLiteFactory",
            "CREATE_TABLE": "false",
            "SQLITE_DBNAME": str(sqlite_path(database_url)),
            "SQLITE_LOCK_TIMEOUT": str(BUSY_TIMEOUT_SECONDS),
            "APPLICATION_RECORDER_TOPIC": SQLITE_RECORDER,
        }
    if scheme in ("postgresql", "postgres"):
        if not parts.hostname or not parts.path.strip("/"):
            raise InvalidInput("postgresql URL needs a host and a database name", field="database_url")
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "CREATE_TABLE": "false",
            "POSTGRES_DBNAME": unquote(parts.path.strip("/")),
            "POSTGRES_HOST": parts.hostname,
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": unquote(parts.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parts.password or ""),
            "POSTGRES_POOL_SIZE": str(POOL_SIZE),
            "POSTGRES_MAX_OVERFLOW": str(MAX_OVERFLOW),
            "POSTGRES_LOCK_TIMEOUT": str(BUSY_TIMEOUT_SECONDS),
            "APPLICATION_RECORDER_TOPIC": POSTGRES_RECORDER,
        }
    raise InvalidInput(
        f"unsupported database URL scheme {parts.scheme!r}: use sqlite:/// or postgresql://",
        field="database_url",
    )


@contextmanager
def open_chain(database_url: str) -> Iterator[ChainReader]:
    """The chain of the store at `database_url`, read through the recorder a ledger there writes with,
    but without the application: an audit needs no aggregates, and importing them costs ~1 s.
    Closed on exit."""
    factory = InfrastructureFactory.construct(Environment(APPLICATION_NAME, store_env(database_url)))
    try:
        recorder = factory.application_recorder()
        assert isinstance(recorder, ChainReader), "the store's recorder is not a chained one"
        yield recorder
    finally:
        factory.close()
