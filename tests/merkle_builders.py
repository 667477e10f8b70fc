"""Builders for the verifiable-log tests: a ledger with N events, its transparency service, and an attacker.

Events are written through the `Ledger`'s public commands only (a trial, a plant, then lots received,
released and put on hold). `Attacker` reaches the tables behind the ledger's back, as someone with
database access could: it switches off the append-only triggers and rewrites rows.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg

from ledger.application import Ledger
from ledger.chain import GENESIS_HASH, encode_event, link_hash
from ledger.commands import HoldLot, ReceiveLot, RegisterLocation, ReleaseLot
from ledger.config import Settings
from ledger.export import write_export
from ledger.gs1 import with_check_digit
from ledger.transparency import Transparency
from ledger.values import Actor, Meaning, Quantity, Role, sign
from scripts.witness import DatabaseFeed, Witness
from tests.pgutil import connect_kwargs

ADMIN = Actor("admin1", Role.ADMIN, "Ada Admin")
MFG = Actor("mfg1", Role.MANUFACTURING, "Max Maker")
QA = Actor("qa1", Role.QA, "Quinn QA")
ORIGIN = "lotline.test/log"


class SupplyLog:
    """A ledger that grows by lots: each `grow(n)` writes n events (receipts, releases and holds)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.lots = 0
        self.plant = ledger.handle(
            RegisterLocation(
                gln=with_check_digit("400000000001"),
                kind="manufacturing_site",
                name="Plant",
                country="DE",
            ),
            ADMIN,
        ).id

    def grow(self, events: int) -> None:
        """Write `events` more events: receive a lot, then release or hold every other one."""
        written = 0
        while written < events:
            self.lots += 1
            lot = self.ledger.handle(
                ReceiveLot(
                    gtin=with_check_digit("0400000000010"),
                    lot_number=f"API-{self.lots}",
                    kind="api",
                    material="lotanib",
                    quantity=Quantity.of(str(self.lots), "kg"),
                    location_id=self.plant,
                    manufactured_on=date(2026, 1, 1),
                    expires_on=date(2028, 1, 1),
                    supplier="ChemCo",
                ),
                MFG,
            ).id
            written += 1
            if written < events and self.lots % 2 == 0:
                self.ledger.handle(
                    ReleaseLot(
                        lot_id=lot,
                        signature=sign(QA, Meaning.RELEASED),
                        results_ref=f"COA-{self.lots}",
                    ),
                    QA,
                )
                written += 1
            elif written < events and self.lots % 3 == 0:
                self.ledger.handle(HoldLot(lot_id=lot, reason="pending investigation"), QA)
                written += 1

    @property
    def size(self) -> int:
        return self.ledger.chain.head()[0]


def settings(database_url: str, keys_dir: Path, **kw: Any) -> Settings:
    return Settings(database_url=database_url, keys_dir=keys_dir, log_name=ORIGIN, **kw)


@contextmanager
def supply_log(
    database_url: str, keys_dir: Path, events: int = 0, **kw: Any
) -> Iterator[tuple[SupplyLog, Transparency]]:
    """A ledger with `events` events (plus the plant's registration) and its transparency service."""
    ledger = Ledger.open(database_url, keys_dir=keys_dir)
    log = Transparency.for_reader(ledger.chain, settings(database_url, keys_dir, **kw))
    try:
        supply = SupplyLog(ledger)
        supply.grow(max(events - 1, 0))
        yield supply, log
    finally:
        log.close()
        ledger.close()


# --- behind the ledger's back -------------------------------------------------------------------------


class Attacker:
    """Raw, autocommit access to the ledger's tables; the append-only triggers switched off."""

    def __init__(self, database_url: str, events_table: str) -> None:
        self.postgres = database_url.startswith("postgres")
        self.events = events_table
        self.conn: Any
        if self.postgres:
            self.conn = psycopg.connect(**connect_kwargs(database_url), autocommit=True)
        else:
            self.conn = sqlite3.connect(database_url.split("://", 1)[1][1:], isolation_level=None)

    def close(self) -> None:
        self.conn.close()

    def _disable_triggers(self) -> None:
        # Each time: opening a Ledger re-creates the append-only triggers.
        for table in (self.events, "ledger_chain"):
            if self.postgres:
                self.conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER ALL")
            else:
                for op in ("update", "delete"):
                    self.conn.execute(f"DROP TRIGGER IF EXISTS {table}_no_{op}")

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if not sql.startswith("SELECT"):
            self._disable_triggers()
        if self.postgres:
            sql = sql.replace("?", "%s")
        cur = self.conn.execute(sql, params)
        return list(cur.fetchall()) if cur.description else []

    def key(self, stream: str) -> Any:
        return UUID(stream) if self.postgres else UUID(stream).hex

    def chain_row(self, seq: int) -> tuple[str, int]:
        row = self.execute("SELECT originator_id, originator_version FROM ledger_chain WHERE seq = ?", (seq,))
        return str(UUID(str(row[0][0]))), int(row[0][1])

    def event(self, seq: int) -> tuple[str, int, str, bytes]:
        stream, version = self.chain_row(seq)
        topic, state = self.execute(
            f"SELECT topic, state FROM {self.events} WHERE originator_id = ? AND originator_version = ?",
            (self.key(stream), version),
        )[0]
        return stream, version, topic, bytes(state)

    def alter_event(self, seq: int, change: Callable[[dict[str, Any]], None] = lambda s: None) -> None:
        """Rewrite event `seq`'s stored state (by default: who did it)."""
        stream, version, _topic, state = self.event(seq)
        doc = json.loads(state)
        doc["audit"]["name"] = "Mallory Forger"
        change(doc)
        self.execute(
            f"UPDATE {self.events} SET state = ? WHERE originator_id = ? AND originator_version = ?",
            (json.dumps(doc).encode(), self.key(stream), version),
        )

    def delete_event(self, seq: int) -> None:
        stream, version = self.chain_row(seq)
        self.execute(
            f"DELETE FROM {self.events} WHERE originator_id = ? AND originator_version = ?",
            (self.key(stream), version),
        )

    def rehash_chain(self, from_seq: int = 1) -> None:
        """Recompute every chain hash from `from_seq` on, so the altered chain looks intact."""
        prev = GENESIS_HASH
        if from_seq > 1:
            row = self.execute("SELECT chain_hash FROM ledger_chain WHERE seq = ?", (from_seq - 1,))
            prev = bytes(row[0][0])
        last = int(self.execute("SELECT MAX(seq) FROM ledger_chain")[0][0])
        for seq in range(from_seq, last + 1):
            stream, version, topic, state = self.event(seq)
            prev = link_hash(prev, encode_event(seq, stream, version, topic, state))
            self.execute("UPDATE ledger_chain SET chain_hash = ? WHERE seq = ?", (prev, seq))

    def truncate(self, keep: int) -> None:
        """Cut the log to its first `keep` events: events, chain rows, the stored tree (not checkpoints)."""
        last = int(self.execute("SELECT MAX(seq) FROM ledger_chain")[0][0])
        for seq in range(last, keep, -1):
            self.delete_event(seq)
            self.execute("DELETE FROM ledger_chain WHERE seq = ?", (seq,))
        self.execute("DELETE FROM ledger_merkle_nodes")

    def forget_tree(self, keep_checkpoints_up_to: int = -1) -> None:
        """Drop the stored tree and the checkpoints (above a size), as a rewriter would to re-sign."""
        self.execute("DELETE FROM ledger_merkle_nodes")
        self.execute("DELETE FROM ledger_cosignatures WHERE size > ?", (keep_checkpoints_up_to,))
        self.execute("DELETE FROM ledger_checkpoints WHERE size > ?", (keep_checkpoints_up_to,))


# --- a log a witness has watched ------------------------------------------------------------------------


@dataclass
class History:
    """30 events, checkpoints at 20 and 30, both cosigned by a witness; an attacker at the ready."""

    supply: SupplyLog
    log: Transparency
    witness: Witness
    attacker: Attacker
    url: str
    tmp: Path

    def witness_run(self) -> None:
        """One witness round against the live database (raises Refused when it will not cosign)."""
        feed = DatabaseFeed(self.url)
        try:
            accepted = self.witness.add_checkpoint(feed.request(self.witness.size_and_root()[0]))
            feed.submit(accepted.cosigned_note, self.witness.key)
        finally:
            feed.close()

    def export(self, name: str = "export") -> Path:
        write_export(self.log, self.tmp / name)
        return self.tmp / name

    def trusted(self) -> str:
        """The checkpoint the witness saved: what an inspector keeps."""
        assert self.witness.checkpoint is not None
        return self.witness.checkpoint


@contextmanager
def witnessed_history(database_url: str, tmp: Path) -> Iterator[History]:
    with supply_log(database_url, tmp / "keys", events=20) as (supply, log):
        key = log.keys.generate()
        log.checkpoint()
        witness = Witness.init(tmp / "witness.json", "inspector.test/w1", ORIGIN, [key.vkey])
        attacker = Attacker(database_url, supply.ledger.chain.events_table_name)
        h = History(supply, log, witness, attacker, database_url, tmp)
        try:
            h.witness_run()
            supply.grow(10)
            log.checkpoint()
            h.witness_run()
            assert log.verify().ok and witness.size_and_root()[0] == 30
            yield h
        finally:
            attacker.close()
