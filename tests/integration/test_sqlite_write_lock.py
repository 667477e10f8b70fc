"""SQLite writers take the store's one write lock at BEGIN, polling for it while another writer holds it
(ledger/db.py `begin_immediate`): they go on once it is released, give up as "busy" after the busy
timeout, and leave their connection's busy timeout as they found it. The ledger's commits leave the
copying of the write-ahead log back into the store to a checkpointer thread (`WalCheckpointer`)."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import text

from ledger import db
from ledger.application import Ledger
from ledger.errors import StoreBusy
from tests.builders import Program


@pytest.fixture
def url(new_store: Callable[[str, str], str]) -> str:
    return new_store("sqlite", "ledger")


@contextmanager
def lock_held(url: str) -> Iterator[threading.Event]:
    """Another process's writer holding the write lock until the event is set."""
    other = sqlite3.connect(db.sqlite_path(url), isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    release = threading.Event()

    def let_go() -> None:
        release.wait(30)
        other.execute("ROLLBACK")

    holder = threading.Thread(target=let_go)
    holder.start()
    try:
        yield release
    finally:
        release.set()
        holder.join()
        other.close()


def test_a_writer_waits_for_the_lock_and_keeps_its_busy_timeout(url: str) -> None:
    conn = sqlite3.connect(db.sqlite_path(url), isolation_level=None, timeout=7)
    with lock_held(url) as release:
        threading.Timer(0.2, release.set).start()
        db.begin_immediate(conn)  # returns once the other writer let go
    # it holds the lock now: another writer cannot take it
    probe = sqlite3.connect(db.sqlite_path(url), isolation_level=None, timeout=0)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        probe.execute("BEGIN IMMEDIATE")
    conn.execute("ROLLBACK")
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 7000


def test_a_lock_held_past_the_busy_timeout_is_busy_not_a_crash(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "BUSY_TIMEOUT_SECONDS", 0.2)
    engine = db.open_engine(url)
    ledger = Ledger.open(url)
    try:
        with lock_held(url):
            with engine.connect() as conn, pytest.raises(StoreBusy, match="the store is busy"):
                db.write_lock(conn).begin()
            with pytest.raises(StoreBusy):
                Program(ledger).reference()
            assert ledger.chain.count_events() == 0
        # released, both write
        with engine.connect() as conn, db.write_lock(conn).begin():
            conn.execute(text("SELECT 1"))
        program = Program(ledger).reference()
        assert ledger.chain.count_events() > 0 and program.trial
    finally:
        ledger.close()
        engine.dispose()


def test_the_wal_checkpointer_copies_the_log_back_off_the_writers_path(tmp_path: Path) -> None:
    """A commit copies the write-ahead log back into the store only past `LEDGER_AUTOCHECKPOINT_PAGES`:
    before that, `WalCheckpointer` (run by the projection worker) does it, in its own thread."""
    path = tmp_path / "store.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute(f"PRAGMA wal_autocheckpoint = {db.LEDGER_AUTOCHECKPOINT_PAGES}")
    writer.execute("CREATE TABLE t (x INTEGER)")
    writer.execute("INSERT INTO t VALUES (42)")

    def in_the_store_file() -> bool:
        """Whether the row is in the store's own file (a copy of it without its log)."""
        copy = tmp_path / "copy.db"
        shutil.copyfile(path, copy)
        reader = sqlite3.connect(copy)
        try:
            return bool(reader.execute("SELECT 1 FROM sqlite_master WHERE name = 't'").fetchone()) and (
                reader.execute("SELECT x FROM t").fetchall() == [(42,)]
            )
        finally:
            reader.close()
            copy.unlink()

    assert not in_the_store_file()  # committed, in the log only: the commit did not checkpoint
    checkpoints = db.WalCheckpointer(path, every=0.02)
    try:
        deadline = time.monotonic() + 10
        while not in_the_store_file():
            assert time.monotonic() < deadline, "the checkpointer never copied the log back"
            time.sleep(0.02)
    finally:
        checkpoints.close()
        writer.close()


def test_the_ledgers_connections_leave_the_log_to_the_checkpointer(url: str) -> None:
    ledger = Ledger.open(url)
    try:
        with ledger.recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute("PRAGMA wal_autocheckpoint")
            assert cursor.fetchone()[0] == db.LEDGER_AUTOCHECKPOINT_PAGES
    finally:
        ledger.close()
