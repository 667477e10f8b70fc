"""Rows a command's caller hands to its write (an Idempotency-Key's answer) are inserted in the write's
own transaction, on both stores: kept exactly when the events are, made from the chain positions and
hashes the write assigns, and a row whose key is already stored refuses the write whole."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from eventsourcing.persistence import OperationalError
from sqlalchemy import select

from api.idempotency import keys
from ledger.application import Ledger
from ledger.commands import Recorded
from ledger.commands.materials import HoldLot
from ledger.db import open_engine
from ledger.errors import ConcurrentWriteConflict
from ledger.recorders import ChainReader, Row, RowExists, StaleRead
from tests.builders import Program, actors, writes_nothing


@pytest.fixture
def program(ledger: Ledger) -> Program:
    return Program.released(ledger)


def answer_row(key: str, seen: list[Recorded]) -> Any:
    def rows(recorded: Recorded) -> Sequence[Row]:
        seen.append(recorded)
        body = {"position": recorded.position, "hash": recorded.events[-1].chain_hash}
        return [Row(keys.name, {"principal": "qa1", "key": key, "request_hash": "h", "status": 200,
                                "response": repr(body), "created_at": "2026-01-01T00:00:00+00:00"})]

    return rows


def stored(database_url: str) -> list[Any]:
    engine = open_engine(database_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(keys.c.key, keys.c.response)).all())
    finally:
        engine.dispose()


def test_rows_handed_to_a_write_are_inserted_with_it_and_know_its_positions(
    program: Program, database_url: str
) -> None:
    seen: list[Recorded] = []
    recorded = program.ledger.handle(
        HoldLot(lot_id=program.api, reason="deviation"), actors.qa, answer_row("k-1", seen)
    )
    assert seen == [recorded]  # the rows were made from exactly what the command answered
    head = program.ledger.chain.head()
    assert head == (recorded.position, bytes.fromhex(recorded.events[-1].chain_hash))
    assert stored(database_url) == [("k-1", repr({"position": head[0], "hash": head[1].hex()}))]


def test_a_row_whose_key_is_stored_refuses_the_write_whole(program: Program, database_url: str) -> None:
    program.ledger.handle(HoldLot(lot_id=program.api, reason="first"), actors.qa, answer_row("k", []))
    before = stored(database_url)
    with writes_nothing(program.ledger, RowExists, match="api_idempotency_keys"):
        program.ledger.handle(
            HoldLot(lot_id=program.excipient, reason="again"), actors.qa, answer_row("k", [])
        )
    assert stored(database_url) == before


def test_a_write_retried_after_a_lost_race_carries_its_rows_once(
    program: Program, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first two attempts are refused under the write lock (as if another writer moved a stream
    # the command read); the third commits, and only it leaves a row.
    real = ChainReader._check_expectations
    attempts: list[int] = []

    def refuse_twice(self: ChainReader, *args: Any) -> None:
        attempts.append(1)
        if len(attempts) <= 2:
            raise StaleRead("moved meanwhile")
        real(self, *args)

    monkeypatch.setattr(ChainReader, "_check_expectations", refuse_twice)
    seen: list[Recorded] = []
    hold = HoldLot(lot_id=program.api, reason="x")
    recorded = program.ledger.handle(hold, actors.qa, answer_row("r", seen))
    assert len(attempts) == 3 and seen == [recorded]
    assert [k for k, _ in stored(database_url)] == ["r"]
    assert program.ledger.chain.head()[0] == recorded.position


def test_a_write_that_loses_every_race_stores_no_row(
    program: Program, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def always_stale(self: ChainReader, *args: Any) -> None:
        raise StaleRead("moved meanwhile")

    monkeypatch.setattr(ChainReader, "_check_expectations", always_stale)
    with writes_nothing(program.ledger, ConcurrentWriteConflict):
        program.ledger.handle(HoldLot(lot_id=program.api, reason="x"), actors.qa, answer_row("r", []))
    assert stored(database_url) == []


def test_a_write_the_store_runs_again_keeps_its_checks_and_rows(
    program: Program, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL the recorder runs a write transaction again after a lost connection or a
    deadlock (the library's retry). The second run must check what the command read and insert its
    rows as the first did: they were forgotten once read, and a retried write committed without them."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the recorder retries its write transaction on PostgreSQL only")
    recorder: Any = program.ledger.recorder
    real, runs = type(recorder)._insert_stored_events, []

    def lost_once(self: Any, *args: Any, **kwargs: Any) -> Any:
        runs.append(1)
        if len(runs) == 1:
            raise OperationalError("the connection was lost")  # after the chain rows and the rows
        return real(self, *args, **kwargs)

    monkeypatch.setattr(type(recorder), "_insert_stored_events", lost_once)
    monkeypatch.setattr("eventsourcing.utils.sleep", lambda _seconds: None, raising=False)
    checked: list[int] = []
    real_check = ChainReader._check_expectations

    def counting(self: Any, *args: Any) -> None:
        checked.append(1)
        real_check(self, *args)

    monkeypatch.setattr(ChainReader, "_check_expectations", counting)
    seen: list[Recorded] = []
    recorded = program.ledger.handle(
        HoldLot(lot_id=program.api, reason="deviation"), actors.qa, answer_row("k-retried", seen)
    )
    assert len(runs) == 2 and len(checked) == 2  # the transaction ran twice, checked twice
    assert [key for key, _ in stored(database_url)] == ["k-retried"]
    assert seen[-1] == recorded
