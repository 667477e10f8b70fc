"""Where the read models live: on SQLite a file of their own beside the store's (`<store>-read`), so the
projection worker's writes never hold the lock the ledger's writers wait for; and read models applied
from another ledger (a file left beside a store made anew, or copied beside another) are found out and
started over by `lotline db upgrade`, never answered from."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from ledger import db
from ledger.application import Ledger
from projections.db import open_engine as open_read_engine
from projections.db import read_side_url, writing
from projections.runner import READ_MODELS, ProjectionRunner, ReadModelsOfAnotherLedger
from scripts.db import upgrade_store
from tests.builders import Program


def _tables(url: str) -> set[str]:
    engine = db.open_engine(url)
    try:
        with engine.connect() as conn:
            return set(inspect(conn).get_table_names())
    finally:
        engine.dispose()


def _program(url: str) -> int:
    """A small released program written to the store at `url`; the ledger's head."""
    ledger = Ledger.open(url)
    try:
        Program.released(ledger)
        return int(ledger.recorder.max_notification_id() or 0)
    finally:
        ledger.close()


def _caught_up(url: str) -> dict[str, int]:
    runner = ProjectionRunner.open(url)
    try:
        runner.catch_up()
        return runner.positions()
    finally:
        runner.close()


READ_MODEL_TABLES = {name for p in READ_MODELS for name in p.metadata.tables} | {"projection_tracking"}


def test_on_sqlite_the_read_models_have_a_file_of_their_own(new_store: Callable[[str, str], str]) -> None:
    url = new_store("sqlite", "store")
    assert read_side_url(url) == url + "-read"
    in_store, in_read_file = _tables(url), _tables(read_side_url(url))
    assert in_read_file >= READ_MODEL_TABLES and "projection_origin" in in_read_file
    assert not READ_MODEL_TABLES & in_store
    assert {"lotline_events", "ledger_chain", "epcis_event"} <= in_store
    assert not {"lotline_events", "ledger_chain"} & in_read_file


def test_a_ledger_write_never_waits_for_the_projection_workers_transaction(
    new_store: Callable[[str, str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = new_store("sqlite", "store")
    monkeypatch.setattr(db, "BUSY_TIMEOUT_SECONDS", 0.5)  # a writer that had to wait would be StoreBusy
    engine = open_read_engine(url)
    ledger = Ledger.open(url)
    try:
        with writing(engine) as conn:  # a page's transaction: it holds the read models' write lock
            conn.execute(text("SELECT 1"))
            Program.released(ledger)
        assert ledger.chain.count_events() > 0
    finally:
        ledger.close()
        engine.dispose()


def test_read_models_left_beside_a_store_made_anew_start_over(
    new_store: Callable[[str, str], str], caplog: pytest.LogCaptureFixture
) -> None:
    url = new_store("sqlite", "store")
    head = _program(url)
    assert set(_caught_up(url).values()) == {head}
    path = db.sqlite_path(url)
    assert path is not None
    path.unlink()  # the store deleted, its read models' file forgotten
    upgrade_store(url)  # a new, empty store at the same place
    assert "they have applied" in caplog.text and "start over from position 0" in caplog.text
    assert set(_caught_up(url).values()) == {0}
    head = _program(url)
    assert set(_caught_up(url).values()) == {head}


def test_read_models_of_another_ledger_are_refused_then_started_over(
    new_store: Callable[[str, str], str], tmp_path: Path
) -> None:
    ours, theirs = new_store("sqlite", "ours"), new_store("sqlite", "theirs")
    for url in (ours, theirs):  # the same program, as many events: only the origin tells them apart
        _program(url)
        _caught_up(url)
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{db.sqlite_path(read_side_url(theirs))}{suffix}")
        target = Path(f"{db.sqlite_path(read_side_url(ours))}{suffix}")
        target.unlink(missing_ok=True)
        if source.exists():
            shutil.copyfile(source, target)
    with pytest.raises(ReadModelsOfAnotherLedger, match="whose first event is another") as refused:
        ProjectionRunner.open(ours)
    assert f"lotline db upgrade --database-url {ours}" in refused.value.message
    upgrade_store(ours)
    ledger = Ledger.open(ours)
    try:
        head = int(ledger.recorder.max_notification_id() or 0)
    finally:
        ledger.close()
    assert set(_caught_up(ours).values()) == {head}


def test_read_models_of_a_store_made_before_the_origin_was_recorded_are_kept(database_url: str) -> None:
    """A store whose read models were applied before `projection_origin` existed (every PostgreSQL
    store of the previous release) keeps them: `db upgrade` records the ledger they follow."""
    head = _program(database_url)
    _caught_up(database_url)
    engine = open_read_engine(database_url)
    try:
        with writing(engine) as conn:
            conn.execute(text("DROP TABLE projection_origin"))
    finally:
        engine.dispose()
    with pytest.raises(Exception, match="lotline db upgrade"):
        ProjectionRunner.open(database_url)
    upgrade_store(database_url)
    assert set(_caught_up(database_url).values()) == {head}
    engine = open_read_engine(database_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM projection_origin")).scalar_one() == 1
    finally:
        engine.dispose()
