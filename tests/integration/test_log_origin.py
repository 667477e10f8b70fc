"""The log's origin: new stores take the URL-shaped default; a store keeps the origin it already signs with,
because the origin is part of every signed checkpoint (and of the key name and key ID)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger.application import Ledger
from ledger.config import DEFAULT_LOG_NAME, Settings
from ledger.db import open_engine
from ledger.export import write_export
from ledger.notes import parse_checkpoint, parse_note
from ledger.transparency import LogNameMismatch, Transparency, log_origin
from lotline_verify import verify_export
from scripts.cli import main as lotline
from tests.merkle_builders import SupplyLog

OLD_DEFAULT = "lotline"  # LOTLINE_LOG_NAME's default until issue 12


@pytest.fixture
def supply(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[SupplyLog]:
    monkeypatch.delenv("LOTLINE_LOG_NAME", raising=False)
    ledger = Ledger.open(database_url)
    try:
        supply = SupplyLog(ledger)
        supply.grow(4)
        yield supply
    finally:
        ledger.close()


def open_log(supply: SupplyLog, database_url: str, keys_dir: Path, **settings: Any) -> Transparency:
    """The log as a process configured with `settings` (and LOTLINE_LOG_NAME unset) opens it."""
    return Transparency.for_reader(
        supply.ledger.chain, Settings(database_url=database_url, keys_dir=keys_dir, **settings)
    )


def signed_origin(log: Transparency) -> str:
    view = log.latest()
    assert view is not None
    return parse_checkpoint(parse_note(view.checkpoint.note).text).origin


def test_a_new_store_is_named_by_the_url_like_default(
    supply: SupplyLog, database_url: str, tmp_path: Path
) -> None:
    assert DEFAULT_LOG_NAME == "lotline.local/log"
    log = open_log(supply, database_url, tmp_path / "keys")
    try:
        assert log.origin == DEFAULT_LOG_NAME
        assert log.keys.generate().vkey.startswith(f"{DEFAULT_LOG_NAME}+")
        log.checkpoint()
        assert signed_origin(log) == DEFAULT_LOG_NAME
    finally:
        log.close()


def test_a_store_signed_as_lotline_keeps_its_origin_when_the_setting_is_unset(
    supply: SupplyLog, database_url: str, tmp_path: Path
) -> None:
    keys_dir = tmp_path / "keys"
    # signed before the default changed (then LOTLINE_LOG_NAME unset meant "lotline")
    before = open_log(supply, database_url, keys_dir, log_name=OLD_DEFAULT)
    key = before.keys.generate()
    before.checkpoint()
    before.close()
    supply.grow(3)
    # the same deployment after the upgrade: the setting is still unset
    log = open_log(supply, database_url, keys_dir)
    try:
        assert log.origin == OLD_DEFAULT
        assert log.keys.active() == key                                 # the same key signs on
        assert log.checkpoint().size == supply.size
        assert signed_origin(log) == OLD_DEFAULT
        report = log.verify()
        assert report.ok and report.checkpoints == 2, report.describe()
        write_export(log, tmp_path / "export")
    finally:
        log.close()
    verdict = verify_export(tmp_path / "export")
    assert verdict.ok and verdict.origin == OLD_DEFAULT, verdict.describe()
    engine = open_engine(database_url)
    try:  # `lotline keys ...` resolves the name the same way
        assert log_origin(engine, Settings(database_url=database_url)) == OLD_DEFAULT
    finally:
        engine.dispose()


def test_an_explicit_name_that_differs_from_the_stores_is_refused(
    supply: SupplyLog, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys_dir = tmp_path / "keys"
    before = open_log(supply, database_url, keys_dir, log_name=OLD_DEFAULT)
    before.keys.generate()                                  # a key is enough: its name is the origin
    before.close()
    with pytest.raises(LogNameMismatch, match=r"this store's log is 'lotline'.*'sponsor\.example/trial-17'"):
        open_log(supply, database_url, keys_dir, log_name="sponsor.example/trial-17")
    monkeypatch.setenv("LOTLINE_LOG_NAME", "sponsor.example/trial-17")
    with pytest.raises(LogNameMismatch, match="unset it or set it to 'lotline'"):
        open_log(supply, database_url, keys_dir)
    monkeypatch.setenv("LOTLINE_LOG_NAME", OLD_DEFAULT)     # naming the store's own origin is fine
    open_log(supply, database_url, keys_dir).close()


def test_the_commands_keep_the_stores_origin_or_say_why_not(
    supply: SupplyLog, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LOTLINE_DATABASE_URL", database_url)
    monkeypatch.setenv("LOTLINE_KEYS_DIR", str(tmp_path / "keys"))
    assert lotline(["keys", "generate", "--log-name", OLD_DEFAULT]) == 0
    capsys.readouterr()
    assert lotline(["keys", "rotate"]) == 0                     # LOTLINE_LOG_NAME unset
    assert "\n          lotline+" in capsys.readouterr().out
    assert lotline(["checkpoint", "make"]) == 0
    assert capsys.readouterr().out.startswith(f"{OLD_DEFAULT}\n{supply.size}\n")
    monkeypatch.setenv("LOTLINE_LOG_NAME", "sponsor.example/trial-17")
    assert lotline(["checkpoint", "make"]) == 1
    assert "this store's log is 'lotline'" in capsys.readouterr().err
    assert lotline(["keys", "list"]) == 1
    assert "an origin cannot change" in capsys.readouterr().err
