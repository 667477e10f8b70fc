"""Direct access to a ledger's tables, behind the ledger's back: what an attacker with DB access can do.

The same few statements on SQLite and PostgreSQL: SQL is written with `?` placeholders and adapted.
"""

from __future__ import annotations

import sqlite3
from typing import Any
from uuid import UUID

import psycopg

from tests.pgutil import connect_kwargs

CHAIN = "ledger_chain"

# Errors a database raises when a statement is refused (by a trigger or a constraint).
REFUSED: tuple[type[Exception], ...] = (sqlite3.DatabaseError, psycopg.Error)


class RawStore:
    """An autocommit connection to the ledger's database that bypasses every ledger check.

    The events table is `stored_events` on SQLite and `lotline_events` on PostgreSQL (the library
    names it after the application there): pass the recorder's `events_table_name`.
    """

    def __init__(self, database_url: str, events_table: str) -> None:
        self.postgres = database_url.startswith(("postgresql", "postgres"))
        self.events = events_table
        self.tables = (events_table, CHAIN)
        self.conn: Any
        if self.postgres:
            self.conn = psycopg.connect(**connect_kwargs(database_url), autocommit=True)
        else:
            path = database_url.split("://", 1)[1][1:]
            self.conn = sqlite3.connect(path, isolation_level=None)

    def close(self) -> None:
        self.conn.close()

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement; the rows it returns (if any)."""
        if self.postgres:
            sql = sql.replace("?", "%s")
        cursor = self.conn.execute(sql, params)
        return list(cursor.fetchall()) if cursor.description else []

    def key(self, stream: UUID | str) -> Any:
        """An originator id as the store keeps it (uuid on PostgreSQL, 32 hex digits on SQLite)."""
        stream = UUID(str(stream))
        return stream if self.postgres else stream.hex

    # --- the append-only triggers ---------------------------------------------------------------------

    def disable_triggers(self) -> None:
        """Switch off the append-only triggers, as someone who owns the tables can."""
        for table in self.tables:
            if self.postgres:
                self.execute(f"ALTER TABLE {table} DISABLE TRIGGER ALL")
            else:
                for op in ("update", "delete"):
                    self.execute(f"DROP TRIGGER {table}_no_{op}")

    def trigger_names(self) -> set[str]:
        if self.postgres:
            rows = self.execute(
                "SELECT tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "WHERE NOT t.tgisinternal AND c.relname IN (?, ?)",
                self.tables,
            )
        else:
            rows = self.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        return {r[0] for r in rows}

    # --- rows -------------------------------------------------------------------------------------------

    def event(self, stream: UUID | str, version: int) -> tuple[str, bytes]:
        """(topic, state) of one stored event."""
        rows = self.execute(
            f"SELECT topic, state FROM {self.events} WHERE originator_id = ? AND originator_version = ?",
            (self.key(stream), version),
        )
        assert len(rows) == 1, f"no stored event {stream} v{version}"
        return rows[0][0], bytes(rows[0][1])

    def set_event(self, stream: UUID | str, version: int, topic: str, state: bytes) -> None:
        self.execute(
            f"UPDATE {self.events} SET topic = ?, state = ? "
            "WHERE originator_id = ? AND originator_version = ?",
            (topic, state, self.key(stream), version),
        )

    def insert_event(self, stream: UUID | str, version: int, topic: str, state: bytes) -> None:
        self.execute(
            f"INSERT INTO {self.events} (originator_id, originator_version, topic, state) "
            "VALUES (?, ?, ?, ?)",
            (self.key(stream), version, topic, state),
        )

    def delete_event(self, stream: UUID | str, version: int) -> None:
        self.execute(
            f"DELETE FROM {self.events} WHERE originator_id = ? AND originator_version = ?",
            (self.key(stream), version),
        )

    def seq_of(self, stream: UUID | str, version: int) -> int:
        rows = self.execute(
            f"SELECT seq FROM {CHAIN} WHERE originator_id = ? AND originator_version = ?",
            (self.key(stream), version),
        )
        return int(rows[0][0])

    def chain_row(self, seq: int) -> tuple[str, int]:
        """(stream as hyphenated UUID, version) at chain position `seq`."""
        rows = self.execute(f"SELECT originator_id, originator_version FROM {CHAIN} WHERE seq = ?", (seq,))
        return str(UUID(str(rows[0][0]))), int(rows[0][1])
