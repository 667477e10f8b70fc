"""The one SQLAlchemy engine factory for Lotline's store, and what every caller needs to know about URLs.

Decided once, here, for every table outside the event store (users, keys, checkpoints, the Merkle
tree, EPCIS, idempotency keys, read models):
- SQLite: WAL journal, a 30 s busy timeout, no foreign-key enforcement (as SQLite's default; the
  event store's own connections, made by the eventsourcing library, do not enforce them either).
  The driver's own transaction handling is switched off and the engine issues `BEGIN` itself: a
  deferred `BEGIN` by default, `BEGIN IMMEDIATE` on a connection with `write_lock(conn)`, so a
  writer that reads before it writes holds the write lock from its first statement; that `BEGIN
  IMMEDIATE` polls for the lock (`begin_immediate`), as the event store's writes do. The write-ahead
  log is copied back into the store by the projection worker (`WalCheckpointer`), not in the commit
  of a request: the event store's connections checkpoint only past `LEDGER_AUTOCHECKPOINT_PAGES`.
- Pools, both stores: 5 connections kept plus up to `MAX_OVERFLOW` more, waiting `POOL_TIMEOUT` s at
  most. The API runs sync routes in anyio's thread pool (40 threads), each holding at most one
  connection of an engine at a time, plus a few background threads (checkpointer, worker thread):
  sized so no request waits for a connection of its own process, and a pool timeout never becomes a
  500. On PostgreSQL that allows ~50 connections per engine and process at the peak: give the server
  `max_connections` >= API workers x 100 + 20 (the event store, read models and users each have one).
The event store's own connections are the eventsourcing library's (`ledger.store.store_env`), sized
the same way.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DisconnectionError

from ledger.errors import InvalidInput, StoreBusy

BUSY_TIMEOUT_SECONDS = 30
REQUEST_THREADS = 40
"""anyio's default thread limiter: how many sync routes one API process runs at once."""
POOL_SIZE, MAX_OVERFLOW = 5, REQUEST_THREADS + 5
POOL_TIMEOUT = BUSY_TIMEOUT_SECONDS

_WRITE_OPTION = "lotline_write"

log = logging.getLogger(__name__)


def open_engine(database_url: str, *, durable: bool = True) -> Engine:
    """An engine on the store `database_url` (`sqlite:///...` or `postgresql://...`), shareable by threads.

    `durable=False` is for read models only, which are rebuilt from the events: on SQLite their
    commits skip the fsync (WAL `synchronous=NORMAL`; a power cut may lose the last batches, rows and
    tracking position together, and they are applied again) and get a 64 MiB page cache.
    """
    url = sqlalchemy_url(database_url)
    if not url.startswith("sqlite"):
        engine = create_engine(url, pool_size=POOL_SIZE, max_overflow=MAX_OVERFLOW, pool_timeout=POOL_TIMEOUT)
        _ping_when_idle(engine)
        return engine
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
                           pool_size=POOL_SIZE, max_overflow=MAX_OVERFLOW, pool_timeout=POOL_TIMEOUT)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver stops issuing BEGIN itself
        _write_ahead_log(dbapi_connection)
        if not durable:
            dbapi_connection.execute("PRAGMA synchronous=NORMAL")
            dbapi_connection.execute("PRAGMA cache_size=-65536")

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        if conn.get_execution_options().get(_WRITE_OPTION, False):
            try:
                begin_immediate(conn.connection.dbapi_connection)
            except sqlite3.OperationalError as e:
                if _locked(e):
                    raise StoreBusy(str(e)) from None
                raise
        else:
            conn.exec_driver_sql("BEGIN")

    @event.listens_for(engine, "handle_error")
    def _busy(context: ExceptionContext) -> None:
        if _locked(context.original_exception):  # else SQLAlchemy raises its own wrapped error
            raise StoreBusy(str(context.original_exception)) from None

    return engine


PING_AFTER_IDLE_SECONDS = 2.0
"""A pooled PostgreSQL connection idle longer than this is pinged before it is handed out."""


def _ping_when_idle(engine: Engine) -> None:
    """Check a pooled connection at checkout only when it has been idle for a while: SQLAlchemy's
    `pool_pre_ping` pings at every checkout, a round trip per checkout (two of the eleven a backward
    trace made on PostgreSQL). A connection handed back moments ago is alive, unless the server went
    away within those `PING_AFTER_IDLE_SECONDS`: that request fails as a lost connection would, the
    pool then drops every connection it holds (SQLAlchemy invalidates the pool on a disconnect) and
    the next checkouts connect afresh. A failed ping is a `DisconnectionError`, on which the pool
    replaces the connection and tries again, as `pool_pre_ping` does."""

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        record.info["lotline_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("lotline_idle_since")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return  # a new connection, or one in use moments ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as e:  # the driver's error for a connection the server dropped
            raise DisconnectionError(f"connection idle {time.monotonic() - since:.0f} s is gone: {e}") from e


def _locked(e: BaseException) -> bool:
    """Whether `e` is SQLite's "database is locked" through the busy timeout: raised as `StoreBusy`
    (503 with Retry-After, a message for the CLI) whichever write met it, the ledger's, an account's,
    a console session's or an EPCIS named query's."""
    return isinstance(e, sqlite3.OperationalError) and "locked" in str(e)


def _write_ahead_log(dbapi_connection: Any) -> None:
    """Put a SQLite store in WAL mode (it stays so: later connections only read the mode). Switching
    needs the database to itself, and SQLite answers "database is locked" at once, without waiting out
    the busy timeout, when another connection opening a new store holds it: wait here instead."""
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            if dbapi_connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                dbapi_connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


LEDGER_AUTOCHECKPOINT_PAGES = 10_000
"""How large (pages of 4 KiB) a SQLite store's write-ahead log grows before a commit of the ledger
copies it back into the store itself. At SQLite's 1,000, under the peak mix one receipt in 40 or so
paid 10-30 ms in its commit for it; `WalCheckpointer` (run by the projection worker) copies the log
back long before, off the request path, and this stays the net when no worker runs."""

WAL_CHECKPOINT_SECONDS = 0.2


class WalCheckpointer:
    """Copies a SQLite store's write-ahead log back into it every `every` seconds, in a thread of its
    own: `PRAGMA wal_checkpoint(PASSIVE)` waits for no reader or writer and copies what no reader still
    needs. Started by the projection worker (`start_wal_checkpoints`); `close()` stops it."""

    def __init__(self, path: Path, every: float = WAL_CHECKPOINT_SECONDS) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lotline-wal-checkpoints", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        failed = False
        while not self._stop.wait(self._every):
            try:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                failed = False
            except sqlite3.Error:  # e.g. the disk full: the ledger's commits checkpoint themselves
                if not failed:
                    log.exception("checkpointing the store's write-ahead log failed; trying again")
                failed = True

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._conn.close()


def start_wal_checkpoints(database_url: str) -> WalCheckpointer | None:
    """A `WalCheckpointer` on the SQLite store at `database_url` (None on PostgreSQL)."""
    path = sqlite_path(database_url)
    return WalCheckpointer(path) if path is not None else None


LOCK_POLL_SECONDS = 0.001


def begin_immediate(dbapi_connection: Any) -> None:
    """`BEGIN IMMEDIATE` on a SQLite connection, tried again every `LOCK_POLL_SECONDS` while another
    writer holds the lock, for `BUSY_TIMEOUT_SECONDS` at most (then SQLite's "database is locked").

    SQLite's own busy handler does not wait for the lock's release: it sleeps 1, 2, 5, 10, 15, 20,
    25 ... ms between tries, so a writer that found the lock taken gets it at the next step of that
    schedule, whenever the other writer let go. Behind a projection worker that commits every few
    milliseconds, ledger writes waited exactly 33, 53 or 78 ms (the schedule's sums), which was the
    tail of a receipt. Polling, a writer takes the lock within a millisecond of its release; only
    this statement polls (the connection's busy timeout is back for everything else)."""
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    (busy_ms,) = dbapi_connection.execute("PRAGMA busy_timeout").fetchone()
    dbapi_connection.execute("PRAGMA busy_timeout = 0")
    try:
        while True:
            try:
                dbapi_connection.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() >= deadline:
                    raise
            time.sleep(LOCK_POLL_SECONDS)
    finally:
        dbapi_connection.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")


def write_lock(conn: Connection) -> Connection:
    """`conn`, set so that its next transaction takes SQLite's write lock at BEGIN (no-op elsewhere)."""
    return conn.execution_options(**{_WRITE_OPTION: True})


def sqlalchemy_url(database_url: str) -> str:
    """The store's URL for SQLAlchemy: psycopg 3 on PostgreSQL; checked to be one Lotline supports."""
    scheme = urlsplit(database_url).scheme.split("+", 1)[0]
    if scheme in ("postgresql", "postgres"):
        return "postgresql+psycopg://" + database_url.split("://", 1)[1]
    if scheme == "sqlite":
        sqlite_path(database_url)
        return database_url
    raise InvalidInput(
        f"unsupported database URL scheme {urlsplit(database_url).scheme!r}: use sqlite:/// or postgresql://",
        field="database_url",
    )


def sqlite_path(database_url: str) -> Path | None:
    """The file a `sqlite:///` URL names (relative to the working directory), or None for other stores."""
    if urlsplit(database_url).scheme.split("+", 1)[0] != "sqlite":
        return None
    path = database_url.split("://", 1)[1]
    path = path[1:] if path.startswith("/") else path  # sqlite:///rel.db -> rel.db
    if not path:
        raise InvalidInput("sqlite URL needs a file path, e.g. sqlite:///lotline.db", field="database_url")
    return Path(path)


def store_url(engine: Engine) -> str:
    """The store URL an engine is on, as a user writes it (no driver name), its password hidden."""
    url = engine.url.set(drivername=engine.url.get_backend_name())
    return url.render_as_string(hide_password=True)


def redacted(database_url: str) -> str:
    """`database_url` with its password (if any) replaced by `***`, for messages and logs."""
    parts = urlsplit(database_url)
    if parts.password is None:
        return database_url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


@contextmanager
def writing(engine: Engine, table: str) -> Iterator[Connection]:
    """A write transaction that holds the append lock of `table` until it commits."""
    # SQLite: the write lock is taken at BEGIN, so two writers never both read the same tail.
    with engine.connect() as conn:
        write_lock(conn)
        with conn.begin():
            lock_for_append(conn, table)
            yield conn


def lock_for_append(conn: Any, table: str) -> None:
    """Serialise writers of `table` (PostgreSQL; on SQLite, BEGIN IMMEDIATE already holds the lock)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE"))
