"""Application recorders that extend the hash chain inside the transaction that inserts the events.

The chain lives in its own table, `ledger_chain`, one row per event in the single global order:
`seq` (1, 2, 3, ... with no gaps), the event's stream and version, and its chain hash. Rows are
written under the store's write lock (SQLite's single writer, PostgreSQL's EXCLUSIVE table lock taken
by the library's recorder), so two writers can never both extend the same head: the chain cannot fork.
Triggers refuse UPDATE and DELETE on the event and chain tables as a second line of defence.
"""

from __future__ import annotations

import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple, cast
from uuid import UUID

from eventsourcing.persistence import IntegrityError, InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresAggregateRecorder, PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteDatastore
from eventsourcing.utils import retry
from psycopg import Cursor
from psycopg.rows import DictRow, tuple_row
from psycopg.sql import SQL, Composed, Identifier, Literal

from ledger.chain import GENESIS_HASH, encode_event, link_hash
from ledger.writer import SIGNATURES_TABLE, CommitSignature, WriterKey

CHAIN_TABLE = "ledger_chain"
EVENTS_TABLE = "lotline_events"
"""The same name on both stores (the library names PostgreSQL's table after the application)."""


@dataclass(frozen=True, slots=True)
class ChainRow:
    """One row of the chain joined with its stored event; `state` is None when the event is gone."""

    seq: int
    originator_id: str
    originator_version: int
    chain_hash: bytes
    topic: str | None
    state: bytes | None


class Link(NamedTuple):
    """Where one event sits in the chain: its position `seq` and its chain hash. A tuple: a commit
    makes one per event, at half the cost of a frozen dataclass."""

    seq: int
    stream: UUID
    version: int
    chain_hash: bytes


@dataclass(frozen=True, slots=True)
class Row:
    """A row the caller of a write hands to its transaction (e.g. the answer to an idempotency key),
    inserted after the chain rows; `table` and the keys of `values` are names from code, not input."""

    table: str
    values: dict[str, Any]


RawChainRow = tuple[int, str, int, bytes, "str | None", "bytes | None"]
"""A chain row as the audit reads it: (seq, stream as stored, version, chain_hash, topic, state)."""


@dataclass(slots=True)
class Pairing:
    """What a walk showed of the events it read: `complete` when it read every chain row with the event
    the store's own order pairs it with (SQLite: event row n is chain row n's; PostgreSQL: the events in
    the order they were inserted are the chain's, one after the other), and with an open end `beyond`,
    the stored events after the last one paired (None: not counted). Walks over consecutive positions
    from genesis, each complete, the last with nothing beyond, show that no event lies outside the chain
    without a query of its own."""

    complete: bool = False
    beyond: int | None = None


class ChainWalk:
    """Chain rows with their events, as plain tuples read in large pages (the audit's read: a million
    rows as objects cost seconds); its `pairing` is known at its end."""

    def __init__(self) -> None:
        self.rows: Iterator[RawChainRow] = iter(())
        self.pairing = Pairing()

    def __iter__(self) -> Iterator[RawChainRow]:
        return self.rows


RowsFor = Callable[[Sequence["Link"]], Sequence[Row]]
"""Makes the rows to insert alongside a write from the links it writes (known only inside it)."""


class RowExists(IntegrityError):
    """A row handed to a write has the key of a stored row: the write is refused whole, nothing of it
    is kept, and it must not simply be run again (the stored row answers it)."""

    def __init__(self, table: str) -> None:
        super().__init__(f"a row with this key is already in {table}")
        self.table = table


_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


def _names(row: Row) -> list[str]:
    names = [row.table, *row.values]
    bad = [n for n in names if not _NAME.match(n)]
    if bad:
        raise ValueError(f"not a table or column name: {bad[0]!r}")
    return list(row.values)


class StaleRead(IntegrityError):
    """Something a command read and relied on changed before its write: the write is refused whole,
    in its own transaction, and the command may be run again on the newer state."""


@dataclass(frozen=True, slots=True)
class Expectations:
    """What must still hold when a write commits, checked under the store's write lock: each stream
    read (not written) is still at the version read, and no event of `quiet` streams came after
    position `quiet_since`."""

    versions: dict[UUID, int]
    quiet_since: int | None = None
    quiet: frozenset[UUID] = frozenset()

    def stale(self, current: dict[UUID, int], touched_since: set[UUID]) -> list[str]:
        """What no longer holds, given the current versions of the read streams and the streams
        touched after `quiet_since`."""
        moved = [f"{s} moved from version {v} to {current.get(s, 0)}" for s, v in self.versions.items()
                 if current.get(s, 0) != v]
        changed = sorted(str(s) for s in touched_since & self.quiet)
        return moved + [f"{s} changed after position {self.quiet_since}" for s in changed[:5]]


_NO_END = 2**62
"""A position beyond any chain (SQLite's integers are 64-bit)."""

# (stream, version) pairs looked up per statement: well below SQLite's limit on bound parameters.
_LINKS_CHUNK = 400


def _chunked(pairs: Iterable[tuple[UUID, int]]) -> Iterator[list[tuple[UUID, int]]]:
    chunk: list[tuple[UUID, int]] = []
    for pair in pairs:
        chunk.append(pair)
        if len(chunk) == _LINKS_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _links(prev: bytes, last_seq: int, events: Sequence[StoredEvent]) -> list[tuple[int, UUID, int, bytes]]:
    """The chain rows (seq, stream, version, hash) of `events` appended after `last_seq`, whose hash
    is `prev`. The stream is the event's own UUID, kept as it is: every use of the rows (the store's
    insert, the command's answer) takes it as a UUID, and a text form made here was parsed back
    twice per event."""
    rows = []
    for offset, e in enumerate(events, start=1):
        seq = last_seq + offset
        prev = link_hash(prev, encode_event(seq, e.originator_id, e.originator_version, e.topic, e.state))
        rows.append((seq, cast(UUID, e.originator_id), e.originator_version, prev))
    return rows


_SELECT_SIGNATURES = f"SELECT seq, chain_hash, kind, key_id, signature FROM {SIGNATURES_TABLE}"
_INSERT_SIGNATURE = (
    f"INSERT INTO {SIGNATURES_TABLE} (seq, chain_hash, kind, key_id, signature) VALUES (%s, %s, %s, %s, %s)"
)


def _sig_values(sig: CommitSignature) -> tuple[int, bytes, str, str, bytes]:
    return (sig.seq, sig.chain_hash, sig.kind, sig.key_id, sig.signature)


class ChainReader(ABC):
    """Queries the chain shares between stores: pages of links, the head, unchained events; and the
    links the last insert of this thread wrote (`take_written`), so a command learns its own chain
    positions and hashes without reading them back."""

    _written = threading.local()
    events_table_name: str
    """The event store's table (the library's recorders set it)."""
    writer: WriterKey | None = None
    """The key that signs each commit (ledger/writer.py); None: commits are not signed."""

    def _sign_commit(
        self,
        head: tuple[int, bytes],
        rows: Sequence[tuple[int, UUID, int, bytes]],
        newest: Callable[[], CommitSignature | None],
        store: Callable[[CommitSignature], object],
    ) -> None:
        """Inside the append transaction: refuse unless the head extended is validly signed (a store
        from before writer signatures had its head signed by `lotline db upgrade`), then sign the new head."""
        if self.writer is None or not rows:
            return
        self.writer.require_signed(*head, newest)
        seq, _, _, chain_hash = rows[-1]
        store(self.writer.sign(seq, chain_hash))

    def signatures(self) -> list[CommitSignature]:
        """Every stored writer signature, in position order."""
        return [CommitSignature(r[0], bytes(r[1]), r[2], r[3], bytes(r[4])) for r in self._signature_rows()]

    @abstractmethod
    def _signature_rows(self) -> list[tuple[Any, ...]]:
        """(seq, chain_hash, kind, key_id, signature) of every writer signature, by seq."""

    def _note_written(self, rows: Sequence[tuple[int, UUID, int, bytes]]) -> None:
        self._written.links = [Link._make(row) for row in rows]

    def take_written(self) -> list[Link]:
        """The links written by this thread's last insert, once (then forgotten)."""
        links: list[Link] = getattr(self._written, "links", [])
        self._written.links = []
        return links

    def expect(self, expectations: Expectations | None) -> None:
        """Check `expectations` inside this thread's inserts until told otherwise (`expect(None)`, which
        the ledger's writes do once their save has returned or raised): a write transaction the
        recorder runs again after a lost connection checks them again."""
        self._written.expect = expectations

    def alongside(self, rows: RowsFor | None) -> None:
        """Insert the rows `rows` makes from the written links in this thread's inserts, in their
        transaction, until told otherwise (`alongside(None)`; see `expect`); one already stored refuses
        the write with `RowExists`."""
        self._written.alongside = rows

    def _rows_alongside(self, links: Sequence[tuple[int, UUID, int, bytes]]) -> Sequence[Row]:
        make: RowsFor | None = getattr(self._written, "alongside", None)
        return make([Link(*link) for link in links]) if make is not None else ()

    def _check_expectations(
        self,
        versions_of: Callable[[list[UUID]], dict[UUID, int]],
        touched_after: Callable[[int], set[UUID]],
    ) -> None:
        expected: Expectations | None = getattr(self._written, "expect", None)
        if expected is None:
            return
        streams = list(expected.versions)
        current: dict[UUID, int] = {}
        for start in range(0, len(streams), _LINKS_CHUNK):
            current.update(versions_of(streams[start : start + _LINKS_CHUNK]))
        touched = touched_after(expected.quiet_since) if expected.quiet_since is not None else set()
        stale = expected.stale(current, touched)
        if stale:
            raise StaleRead("; ".join(stale[:5]))

    def iter_chain(
        self, after_seq: int = 0, page: int = 2000, until: int | None = None
    ) -> Iterator[ChainRow]:
        """Every chain row from `after_seq` (up to position `until`), in order, joined with its event, a
        page at a time."""
        while True:
            limit = page if until is None else min(page, until - after_seq)
            if limit <= 0:
                return
            rows = self._chain_page(after_seq, limit)
            yield from (r for r in rows if until is None or r.seq <= until)
            if len(rows) < limit:
                return
            after_seq = rows[-1].seq

    def hash_at(self, seq: int) -> bytes | None:
        """The chain hash at position `seq` (genesis at 0); None when the chain has no entry `seq`."""
        if seq == 0:
            return GENESIS_HASH
        row = next(self.iter_chain(after_seq=seq - 1, page=1), None)
        return row.chain_hash if row is not None and row.seq == seq else None

    def walk(self, page: int = 20_000, after: int = 0, until: int | None = None) -> ChainWalk:
        """The chain rows at positions `after` + 1 .. `until` (to the end when None) joined with their
        events, for the audit (see `ChainWalk`)."""
        walk = ChainWalk()
        walk.rows = self._walk_rows(walk, page, after, until)
        return walk

    def _walk_rows(self, walk: ChainWalk, page: int, after: int, until: int | None) -> Iterator[RawChainRow]:
        for r in self.iter_chain(after_seq=after, page=page, until=until):
            yield (r.seq, r.originator_id, r.originator_version, r.chain_hash, r.topic, r.state)

    def strays(self, pairings: Sequence[Pairing], limit: int = 1) -> list[tuple[str, int]]:
        """After walks over consecutive positions from genesis to the end: stored events no chain row
        covers (none when the walks themselves paired every stored event)."""
        if pairings and all(p.complete for p in pairings) and pairings[-1].beyond == 0:
            return []
        return self.unchained_events(limit)

    @abstractmethod
    def _chain_page(self, after_seq: int, limit: int) -> list[ChainRow]:
        """Up to `limit` chain rows after `after_seq`, joined with their events."""

    @abstractmethod
    def head(self) -> tuple[int, bytes]:
        """(size, head hash) of the chain; (0, genesis) when empty."""

    def links_for(self, pairs: Iterable[tuple[UUID | str, int]]) -> list[Link]:
        """The chain link of each (stream, version) in `pairs`, in chain order; unknown pairs are left out."""
        unique = dict.fromkeys((UUID(str(stream)), int(version)) for stream, version in pairs)
        found = [link for chunk in _chunked(unique) for link in self._links_page(chunk)]
        return sorted(found, key=lambda link: link.seq)

    @abstractmethod
    def _links_page(self, pairs: list[tuple[UUID, int]]) -> list[Link]:
        """The links of one chunk of (stream, version) pairs."""

    def select_streams(self, streams: Sequence[UUID]) -> dict[UUID, list[StoredEvent]]:
        """Every stored event of each stream, in version order, read a few hundred streams per query
        (a command that touches many kits loads them in one or a few reads, not one read each)."""
        found: dict[UUID, list[StoredEvent]] = {}
        unique = list(dict.fromkeys(streams))
        for start in range(0, len(unique), _LINKS_CHUNK):
            for e in self._select_streams(unique[start : start + _LINKS_CHUNK]):
                found.setdefault(cast(UUID, e.originator_id), []).append(e)  # the UUID asked for
        return found

    @abstractmethod
    def _select_streams(self, streams: list[UUID]) -> list[StoredEvent]:
        """The stored events of a chunk of streams, ordered by stream and version, each with the very
        UUID of `streams` it belongs to as its `originator_id` (a command loads hundreds of events: a
        stream id parsed once more per event cost as much as a tenth of a shipment's load)."""

    @abstractmethod
    def unchained_events(self, limit: int = 10) -> list[tuple[str, int]]:
        """Stored events that no chain row covers: inserted behind the ledger's back."""

    @abstractmethod
    def count_events(self) -> int:
        """How many events the event table holds."""


class ChainedSQLiteApplicationRecorder(SQLiteApplicationRecorder, ChainReader):
    def __init__(self, datastore: SQLiteDatastore, events_table_name: str = EVENTS_TABLE):
        super().__init__(datastore, events_table_name)

    def construct_create_table_statements(self) -> list[str]:
        t = self.events_table_name
        statements = super().construct_create_table_statements()
        statements += [
            f"CREATE TABLE IF NOT EXISTS {CHAIN_TABLE} ("
            "seq INTEGER PRIMARY KEY, "
            "originator_id TEXT NOT NULL, "
            "originator_version INTEGER NOT NULL, "
            "chain_hash BLOB NOT NULL, "
            "UNIQUE (originator_id, originator_version))",
        ]
        for table in (t, CHAIN_TABLE):
            for op in ("UPDATE", "DELETE"):
                statements.append(
                    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'lotline: {table} is append-only'); END"
                )
        return statements

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        # The INSERT below takes SQLite's write lock, so the head we read next cannot move.
        ids = super()._insert_events(c, stored_events, **kwargs)
        self._check_expectations(
            lambda streams: self._versions(c, streams), lambda seq: self._touched_after(c, seq)
        )
        c.execute(f"SELECT seq, chain_hash FROM {CHAIN_TABLE} ORDER BY seq DESC LIMIT 1")
        row = c.fetchone()
        last_seq, prev = (row[0], bytes(row[1])) if row else (0, GENESIS_HASH)
        rows = _links(prev, last_seq, stored_events)
        c.executemany(
            f"INSERT INTO {CHAIN_TABLE} (seq, originator_id, originator_version, chain_hash) "
            "VALUES (?, ?, ?, ?)",
            [(seq, oid.hex, v, h) for seq, oid, v, h in rows],
        )
        self._sign_commit((last_seq, prev), rows, lambda: self._newest_signature(c),
                          lambda sig: c.execute(_INSERT_SIGNATURE.replace("%s", "?"), _sig_values(sig)))
        self._note_written(rows)
        for extra in self._rows_alongside(rows):
            columns = _names(extra)
            c.execute(
                f"INSERT INTO {extra.table} ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' for _ in columns)}) ON CONFLICT DO NOTHING",
                list(extra.values.values()),
            )
            c.execute("SELECT changes()")
            if c.fetchone()[0] != 1:
                raise RowExists(extra.table)
        return ids

    @staticmethod
    def _newest_signature(c: SQLiteCursor) -> CommitSignature | None:
        c.execute(f"{_SELECT_SIGNATURES} ORDER BY seq DESC LIMIT 1")
        r = c.fetchone()
        return CommitSignature(r[0], bytes(r[1]), r[2], r[3], bytes(r[4])) if r else None

    def _signature_rows(self) -> list[tuple[Any, ...]]:
        with self.datastore.transaction(commit=False) as c:
            # Plain tuples from the driver, not the library's `sqlite3.Row`s copied into tuples: a 1M
            # store holds ~270,000 signatures, which took ~1.5 s to read that way.
            c.sqlite_cursor.row_factory = None
            c.execute(f"{_SELECT_SIGNATURES} ORDER BY seq")
            return c.fetchall()

    def _select_streams(self, streams: list[UUID]) -> list[StoredEvent]:
        marks = ", ".join("?" for _ in streams)
        with self.datastore.transaction(commit=False) as c:
            asked = {s.hex: s for s in streams}
            c.execute(
                f"SELECT originator_id, originator_version, topic, state FROM {self.events_table_name} "
                f"WHERE originator_id IN ({marks}) ORDER BY originator_id, originator_version",
                list(asked),
            )
            return [
                StoredEvent(
                    originator_id=asked[r[0]], originator_version=r[1], topic=r[2], state=bytes(r[3])
                )
                for r in c.fetchall()
            ]

    @staticmethod
    def _versions(c: SQLiteCursor, streams: list[UUID]) -> dict[UUID, int]:
        marks = ", ".join("?" for _ in streams)
        c.execute(
            f"SELECT originator_id, MAX(originator_version) FROM {CHAIN_TABLE} "
            f"WHERE originator_id IN ({marks}) GROUP BY originator_id",
            [s.hex for s in streams],
        )
        return {UUID(r[0]): r[1] for r in c.fetchall()}

    @staticmethod
    def _touched_after(c: SQLiteCursor, seq: int) -> set[UUID]:
        c.execute(f"SELECT DISTINCT originator_id FROM {CHAIN_TABLE} WHERE seq > ?", (seq,))
        return {UUID(r[0]) for r in c.fetchall()}

    def _chain_page(self, after_seq: int, limit: int) -> list[ChainRow]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT c.seq, c.originator_id, c.originator_version, c.chain_hash, e.topic, e.state "
                f"FROM {CHAIN_TABLE} c LEFT JOIN {self.events_table_name} e "
                "ON e.originator_id = c.originator_id AND e.originator_version = c.originator_version "
                "WHERE c.seq > ? ORDER BY c.seq LIMIT ?",
                (after_seq, limit),
            )
            return [
                ChainRow(
                    r[0],
                    str(UUID(r[1])),
                    r[2],
                    bytes(r[3]),
                    r[4],
                    bytes(r[5]) if r[5] is not None else None,
                )
                for r in c.fetchall()
            ]

    def _walk_rows(self, walk: ChainWalk, page: int, after: int, until: int | None) -> Iterator[RawChainRow]:
        # The event at chain position n is event row n: both are inserted in one transaction, in the same
        # order, and never deleted. A join on the row number reads both tables in order, instead of an
        # index probe on (stream, version) per row. Its last column says whether that row is the chain
        # row's event (the key is unique); at the first one that is not, the rest is read with the join on
        # the key, as `iter_chain` reads it, and strays are then looked for with a query of their own.
        end = _NO_END if until is None else until
        while after < end:
            limit = min(page, end - after)
            rows, beyond = self._walk_page(after, end, limit, count=until is None)
            n = next((i for i, r in enumerate(rows) if not r[6]), len(rows))
            yield from [r[:6] for r in rows[:n]]
            if n < len(rows):
                for j in self.iter_chain(after_seq=rows[n][0] - 1, page=page, until=until):
                    yield (j.seq, j.originator_id, j.originator_version, j.chain_hash, j.topic, j.state)
                return
            if len(rows) < limit:
                walk.pairing.beyond = beyond
                break
            after = rows[-1][0]
        walk.pairing.complete = True

    def _walk_page(
        self, after_seq: int, until: int, limit: int, *, count: bool
    ) -> tuple[list[tuple[Any, ...]], int | None]:
        """Up to `limit` chain rows at positions `after_seq` + 1 .. `until` with event row `seq` and
        whether it is theirs; with `count`, on the last page (fewer rows), also the number of stored
        events outside rows 1 .. the last one read, in the same transaction."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT c.seq, e.originator_id, e.originator_version, c.chain_hash, e.topic, e.state, "
                "e.originator_id = c.originator_id AND e.originator_version = c.originator_version "
                f"FROM {CHAIN_TABLE} c LEFT JOIN {self.events_table_name} e ON e.rowid = c.seq "
                "WHERE c.seq > ? AND c.seq <= ? ORDER BY c.seq LIMIT ?",
                (after_seq, until, limit),
            )
            rows = c.fetchall()
            if len(rows) == limit or not count:
                return rows, None
            # Rows 1..last were each paired with chain row n: any other event has a row number outside.
            last = rows[-1][0] if rows else after_seq
            c.execute(f"SELECT COUNT(*) FROM {self.events_table_name} WHERE rowid > ? OR rowid < 1", (last,))
            return rows, int(c.fetchone()[0])

    def _links_page(self, pairs: list[tuple[UUID, int]]) -> list[Link]:
        # An OR of key equalities uses the unique index; `IN (VALUES ...)` scans the whole table.
        match = " OR ".join("(originator_id = ? AND originator_version = ?)" for _ in pairs)
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT seq, originator_id, originator_version, chain_hash FROM {CHAIN_TABLE} "
                f"WHERE {match}",
                [x for stream, version in pairs for x in (stream.hex, version)],
            )
            return [Link(r[0], UUID(r[1]), r[2], bytes(r[3])) for r in c.fetchall()]

    def head(self) -> tuple[int, bytes]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT seq, chain_hash FROM {CHAIN_TABLE} ORDER BY seq DESC LIMIT 1")
            row = c.fetchone()
            return (row[0], bytes(row[1])) if row else (0, GENESIS_HASH)

    def unchained_events(self, limit: int = 10) -> list[tuple[str, int]]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT e.originator_id, e.originator_version FROM {self.events_table_name} e "
                f"LEFT JOIN {CHAIN_TABLE} c ON e.originator_id = c.originator_id "
                "AND e.originator_version = c.originator_version "
                "WHERE c.seq IS NULL ORDER BY e.rowid LIMIT ?",
                (limit,),
            )
            return [(str(UUID(r[0])), r[1]) for r in c.fetchall()]

    def count_events(self) -> int:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT COUNT(*) FROM {self.events_table_name}")
            return int(c.fetchone()[0])


def _paired(links: list[tuple[Any, ...]], events: list[tuple[Any, ...]]) -> int:
    """How many of `links` (seq, stream, version, hash), from the first, are the chain rows of `events`
    (number, stream, version, topic, state), one for one."""
    k = len(links)
    head = events[:k]
    if [c[1] for c in links] == [e[1] for e in head] and [c[2] for c in links] == [e[2] for e in head]:
        return k
    return next((i for i, (c, e) in enumerate(zip(links, head, strict=False)) if c[1:3] != e[1:3]), len(head))


def _uuid(value: UUID | str) -> UUID:
    return value if isinstance(value, UUID) else UUID(value)


def _with_event(link: tuple[Any, ...], event: tuple[Any, ...]) -> RawChainRow:
    return (*link, event[3], event[4])  # type: ignore[return-value]


class ChainedPostgresApplicationRecorder(PostgresApplicationRecorder, ChainReader):
    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = EVENTS_TABLE):
        super().__init__(datastore, events_table_name=events_table_name)
        schema = Identifier(self.datastore.schema)
        events = Identifier(self.events_table_name)
        chain = Identifier(CHAIN_TABLE)
        self.sql_create_statements += [
            SQL(
                "CREATE TABLE IF NOT EXISTS {schema}.{chain} ("
                "seq bigint PRIMARY KEY, "
                "originator_id {idtype} NOT NULL, "
                "originator_version bigint NOT NULL, "
                "chain_hash bytea NOT NULL, "
                "UNIQUE (originator_id, originator_version))"
            ).format(schema=schema, chain=chain, idtype=Identifier(self.datastore.originator_id_type)),
            SQL(
                "CREATE OR REPLACE FUNCTION {schema}.lotline_append_only() RETURNS trigger "
                "LANGUAGE plpgsql AS $$ BEGIN "
                "RAISE EXCEPTION 'lotline: % is append-only', TG_TABLE_NAME; "
                "END $$"
            ).format(schema=schema),
        ]
        for table_name in (self.events_table_name, CHAIN_TABLE):
            self.sql_create_statements += [
                SQL(
                    "CREATE OR REPLACE TRIGGER {trigger} BEFORE UPDATE OR DELETE ON {schema}.{table} "
                    "FOR EACH ROW EXECUTE FUNCTION {schema}.lotline_append_only()"
                ).format(
                    trigger=Identifier(f"{table_name}_append_only"),
                    schema=schema,
                    table=Identifier(table_name),
                ),
                SQL(
                    "CREATE OR REPLACE TRIGGER {trigger} BEFORE TRUNCATE ON {schema}.{table} "
                    "FOR EACH STATEMENT EXECUTE FUNCTION {schema}.lotline_append_only()"
                ).format(
                    trigger=Identifier(f"{table_name}_no_truncate"),
                    schema=schema,
                    table=Identifier(table_name),
                ),
            ]
        self._select_head = SQL(
            "SELECT seq, chain_hash FROM {schema}.{chain} ORDER BY seq DESC LIMIT 1"
        ).format(schema=schema, chain=chain)
        # One statement for a commit's chain rows, its columns as arrays: 100 rows sent as one INSERT
        # instead of 100 (psycopg's executemany sends them in one round trip, but the server runs
        # each); the same for any number of rows.
        self._insert_links = SQL(
            "INSERT INTO {schema}.{chain} (seq, originator_id, originator_version, chain_hash) "
            "SELECT * FROM unnest(%s::bigint[], %s::{idtype}[], %s::bigint[], %s::bytea[])"
        ).format(schema=schema, chain=chain, idtype=Identifier(self.datastore.originator_id_type))
        self._schema, self._chain = schema, chain
        # What a commit does first, sent as one simple query (none takes parameters), one round trip:
        # the library's lock statements (the lock's timeout, then the EXCLUSIVE lock on the events
        # table), its NOTIFY of listeners (sent at commit), and the chain's head, read under the lock.
        self._lock_and_head = SQL("; ").join([
            *self.lock_table_statements,
            SQL("NOTIFY {0}").format(Identifier(self.channel_name)),
            self._select_head,
        ])
        self._select_chain_page = SQL(
            "SELECT c.seq, c.originator_id, c.originator_version, c.chain_hash, e.topic, e.state "
            "FROM {schema}.{chain} c LEFT JOIN {schema}.{events} e "
            "ON e.originator_id = c.originator_id AND e.originator_version = c.originator_version "
            "WHERE c.seq > %s AND c.seq <= %s ORDER BY c.seq LIMIT %s"
        ).format(schema=schema, chain=chain, events=events)
        self._select_links_page = SQL(
            "SELECT seq, originator_id::text, originator_version, chain_hash FROM {schema}.{chain} "
            "WHERE seq > %s AND seq <= %s ORDER BY seq LIMIT %s"
        ).format(schema=schema, chain=chain)
        self._select_events_page = SQL(
            "SELECT notification_id, originator_id::text, originator_version, topic, state "
            "FROM {schema}.{events} WHERE notification_id > %s ORDER BY notification_id LIMIT %s"
        ).format(schema=schema, events=events)
        self._select_notification_at = SQL(
            "SELECT e.notification_id FROM {schema}.{chain} c JOIN {schema}.{events} e "
            "ON e.originator_id = c.originator_id AND e.originator_version = c.originator_version "
            "WHERE c.seq = %s"
        ).format(schema=schema, chain=chain, events=events)
        self._select_unchained = SQL(
            "SELECT e.originator_id, e.originator_version FROM {schema}.{events} e "
            "LEFT JOIN {schema}.{chain} c ON e.originator_id = c.originator_id "
            "AND e.originator_version = c.originator_version "
            "WHERE c.seq IS NULL ORDER BY e.notification_id LIMIT %s"
        ).format(schema=schema, chain=chain, events=events)
        self._select_links = SQL(
            "SELECT seq, originator_id, originator_version, chain_hash FROM {schema}.{chain} "
            "WHERE (originator_id, originator_version) IN "
            "(SELECT * FROM unnest(%s::{idtype}[], %s::bigint[]))"
        ).format(schema=schema, chain=chain, idtype=Identifier(self.datastore.originator_id_type))
        self._select_streams_sql = SQL(
            "SELECT originator_id, originator_version, topic, state FROM {schema}.{events} "
            "WHERE originator_id = ANY(%s::{idtype}[]) ORDER BY originator_id, originator_version"
        ).format(schema=schema, events=events, idtype=Identifier(self.datastore.originator_id_type))
        def on_signatures(statement: str) -> Composed:
            return SQL(statement.replace(SIGNATURES_TABLE, "{schema}.{table}")).format(
                schema=schema, table=Identifier(SIGNATURES_TABLE)
            )

        self._select_signatures = on_signatures(_SELECT_SIGNATURES)
        self._insert_signature = on_signatures(_INSERT_SIGNATURE)
        self._insert_links_signed = SQL("WITH links AS ({links}) {signature}").format(
            links=self._insert_links, signature=self._insert_signature
        )
        self._count_events = SQL("SELECT COUNT(*) AS n FROM {schema}.{events}").format(
            schema=schema, events=events
        )

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        """The library's transaction (our checks and chain rows, then the events, their notification
        ids back), sent statement by statement instead of in psycopg's pipeline mode: pipelined, a
        commit of ~10,000 events never returned (the client waiting in `Pipeline.sync`, the server
        for the client; bare eventsourcing 9.5.6 with psycopg 3.3 does the same). A round trip per
        statement costs little next to the chain; a refused write raises inside the transaction,
        which rolls back."""
        with self.datastore.get_connection() as conn, conn.transaction():
            with conn.cursor() as curs:
                self._insert_events(curs, stored_events, **kwargs)
            if not stored_events:
                return None
            with conn.cursor() as curs:
                self._insert_stored_events(curs, stored_events, **kwargs)
                return self._fetch_ids_after_insert_events(curs, stored_events, **kwargs)

    def _insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        # Runs in the write transaction before the events are inserted: everything that may refuse
        # the write belongs here, before the events table is touched.
        super()._insert_events(curs, stored_events, **kwargs)
        if not stored_events:
            return
        head, versions, touched = self._lock_and_read(curs, getattr(self._written, "expect", None))
        self._check_expectations(lambda _: versions, lambda _: touched)
        last_seq, prev = head
        rows = _links(prev, last_seq, stored_events)
        signed: list[CommitSignature] = []
        self._sign_commit((last_seq, prev), rows, lambda: self._newest_signature(curs), signed.append)
        links = (
            [seq for seq, _, _, _ in rows],
            self._as_stored(oid for _, oid, _, _ in rows),
            [v for _, _, v, _ in rows],
            [h for _, _, _, h in rows],
        )
        if signed:  # the chain rows and the commit's signature in one statement, one round trip
            curs.execute(self._insert_links_signed, (*links, *_sig_values(signed[0])))
        else:
            curs.execute(self._insert_links, links)
        self._note_written(rows)
        for extra in self._rows_alongside(rows):
            columns = _names(extra)
            curs.execute(
                SQL("INSERT INTO {schema}.{table} ({columns}) VALUES ({values}) "
                    "ON CONFLICT DO NOTHING RETURNING 1").format(
                    schema=Identifier(self.datastore.schema),
                    table=Identifier(extra.table),
                    columns=SQL(", ").join(Identifier(c) for c in columns),
                    values=SQL(", ").join(SQL("%s") for _ in columns),
                ),
                list(extra.values.values()),
            )
            if curs.fetchone() is None:
                raise RowExists(extra.table)

    def _lock_and_read(
        self, curs: Cursor[DictRow], expected: Expectations | None
    ) -> tuple[tuple[int, bytes], dict[UUID, int], set[UUID]]:
        """Take the EXCLUSIVE lock on the events table (no other writer can extend the chain until
        this transaction ends; the library's own insert, below, does not take it again) and read,
        under it, the chain's head and what `expected` asks: the versions of its streams and the
        streams touched after its position. One round trip: a simple query of several statements,
        the values inlined as literals (it takes no parameters)."""
        statements = [self._lock_and_head]
        if expected is not None and expected.versions:
            streams = self._as_stored(expected.versions)
            statements.append(SQL(
                "SELECT originator_id, MAX(originator_version) AS v FROM {schema}.{chain} "
                "WHERE originator_id = ANY({streams}) GROUP BY originator_id"
            ).format(schema=self._schema, chain=self._chain, streams=Literal(streams)))
        if expected is not None and expected.quiet_since is not None:
            statements.append(SQL(
                "SELECT DISTINCT originator_id FROM {schema}.{chain} WHERE seq > {seq}"
            ).format(schema=self._schema, chain=self._chain, seq=Literal(expected.quiet_since)))
        curs.execute(SQL("; ").join(statements))
        answers = [curs.fetchall()] if curs.description else []
        while curs.nextset():
            if curs.description:
                answers.append(curs.fetchall())
        head_rows, *asked = answers  # the statements that return rows, in order
        head = (head_rows[0]["seq"], bytes(head_rows[0]["chain_hash"])) if head_rows else (0, GENESIS_HASH)
        versions: dict[UUID, int] = {}
        if expected is not None and expected.versions:
            versions = {_uuid(r["originator_id"]): r["v"] for r in asked.pop(0)}
        touched = {_uuid(r["originator_id"]) for r in asked.pop(0)} if asked else set()
        return head, versions, touched

    def _insert_stored_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        """The library's insert without its lock and NOTIFY, which `_insert_events` sent in this
        transaction (sending them again cost three more round trips per commit)."""
        PostgresAggregateRecorder._insert_stored_events(self, curs, stored_events, **kwargs)

    def _newest_signature(self, curs: Cursor[DictRow]) -> CommitSignature | None:
        curs.execute(self._select_signatures + SQL(" ORDER BY seq DESC LIMIT 1"))
        r = curs.fetchone()
        return CommitSignature(r["seq"], bytes(r["chain_hash"]), r["kind"], r["key_id"],
                               bytes(r["signature"])) if r else None

    def _signature_rows(self) -> list[tuple[Any, ...]]:
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(self._select_signatures + SQL(" ORDER BY seq"))  # tuples: see the SQLite recorder's
            return curs.fetchall()

    def _select_streams(self, streams: list[UUID]) -> list[StoredEvent]:
        as_text = self.datastore.originator_id_type == "text"
        asked = {str(s) if as_text else s: s for s in streams}
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._select_streams_sql, (list(asked),))
            return [
                StoredEvent(
                    originator_id=asked[r["originator_id"]],
                    originator_version=r["originator_version"],
                    topic=r["topic"],
                    state=bytes(r["state"]),
                )
                for r in curs.fetchall()
            ]

    def _chain_page(self, after_seq: int, limit: int) -> list[ChainRow]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._select_chain_page, (after_seq, _NO_END, limit))
            return [
                ChainRow(
                    r["seq"],
                    str(r["originator_id"]),
                    r["originator_version"],
                    bytes(r["chain_hash"]),
                    r["topic"],
                    bytes(r["state"]) if r["state"] is not None else None,
                )
                for r in curs.fetchall()
            ]

    def _walk_rows(self, walk: ChainWalk, page: int, after: int, until: int | None) -> Iterator[RawChainRow]:
        # The events in the order they were inserted (`notification_id`) are the chain's, one after the
        # other: both are inserted in one transaction under the table lock, in the same order, and never
        # deleted (a rolled-back write leaves a gap in the numbers, not in the order). So the chain rows
        # and the events are read side by side, each in its own index's order, instead of probing the
        # events' key once per chain row (4.7 s of the server's time for a million). At the first event
        # that is not the chain row's, the rest is read with the join on the key, and strays are then
        # looked for with a query of their own.
        # Plain tuples in the binary protocol on one connection for the whole walk (dicts, bytea as hex
        # text and a pool checkout per page cost a third of its time), without parallel workers (their
        # rows gathered cost more than they saved); the next page is read while this one is verified
        # (the driver lets go of the interpreter while it waits).
        end = _NO_END if until is None else until
        with (
            self.datastore.get_connection() as conn,
            conn.transaction(),
            conn.cursor(row_factory=tuple_row) as curs,
            ThreadPoolExecutor(1, thread_name_prefix="chain-walk") as reading,
        ):
            curs.execute("SET LOCAL max_parallel_workers_per_gather = 0")
            mark = self._notification_at(curs, after)
            ahead = None if mark is None else reading.submit(self._side_by_side, after, end, mark, page, curs)
            while ahead is not None:
                links, events = ahead.result()
                n = _paired(links, events)
                if n < len(links):
                    yield from map(_with_event, links[:n], events)
                    after = links[n][0] - 1
                    break
                more = len(links) == page and links[-1][0] < end
                ahead = reading.submit(self._side_by_side, links[-1][0], end, events[n - 1][0], page, curs) \
                    if more else None
                yield from map(_with_event, links, events)
                if not more:
                    walk.pairing = Pairing(True, len(events) - n if until is None else None)
                    return
            yield from self._joined(curs, reading, after, end, page)

    def _notification_at(self, curs: Cursor[Any], seq: int) -> int | None:
        """The insertion number of the event at chain position `seq` (before the first: below any number,
        so an event numbered out of the sequence's range is read too); None when the chain has no entry
        `seq` or its event is gone."""
        if seq == 0:
            return -(2**63)
        curs.execute(self._select_notification_at, (seq,))
        row = curs.fetchone()
        return int(row[0]) if row is not None else None

    def _side_by_side(
        self, after_seq: int, until: int, after_notification: int, limit: int, curs: Cursor[Any]
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """Up to `limit` chain rows at positions `after_seq` + 1 .. `until`, and as many events inserted
        after `after_notification`, each in its own order."""
        curs.execute(self._select_links_page, (after_seq, until, limit), binary=True)
        links = curs.fetchall()
        curs.execute(self._select_events_page, (after_notification, limit), binary=True)
        return links, curs.fetchall()

    def _joined(
        self, curs: Cursor[Any], reading: ThreadPoolExecutor, after: int, end: int, page: int
    ) -> Iterator[RawChainRow]:
        ahead = reading.submit(self._walk_page, after, end, page, curs=curs) if after < end else None
        while ahead is not None:
            rows = ahead.result()
            more = len(rows) == page and rows[-1][0] < end
            ahead = reading.submit(self._walk_page, rows[-1][0], end, page, curs=curs) if more else None
            yield from rows

    def _walk_page(self, after_seq: int, until: int, limit: int, *, curs: Cursor[Any]) -> list[RawChainRow]:
        """Up to `limit` chain rows at positions `after_seq` + 1 .. `until` joined with their events."""
        curs.execute(self._select_chain_page, (after_seq, until, limit), binary=True)
        return curs.fetchall()

    def _as_stored(self, streams: Iterable[UUID]) -> list[UUID] | list[str]:
        """Stream ids as the store's id column takes them: UUIDs, or their text where it is text."""
        if self.datastore.originator_id_type == "text":
            return [str(s) for s in streams]
        return list(streams)

    def _links_page(self, pairs: list[tuple[UUID, int]]) -> list[Link]:
        streams = self._as_stored(s for s, _ in pairs)
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._select_links, (streams, [v for _, v in pairs]))
            return [
                Link(r["seq"], _uuid(r["originator_id"]), r["originator_version"], bytes(r["chain_hash"]))
                for r in curs.fetchall()
            ]

    def head(self) -> tuple[int, bytes]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._select_head)
            row = curs.fetchone()
            return (row["seq"], bytes(row["chain_hash"])) if row else (0, GENESIS_HASH)

    def unchained_events(self, limit: int = 10) -> list[tuple[str, int]]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._select_unchained, (limit,))
            return [(str(r["originator_id"]), r["originator_version"]) for r in curs.fetchall()]

    def count_events(self) -> int:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._count_events)
            row = curs.fetchone()
            return int(row["n"]) if row else 0
