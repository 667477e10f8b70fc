"""A server process freezes what it made at start-up out of the collector's full passes (its p99 was
those passes: `api.app.settle_heap`); an app made by a test does not (a frozen object is never freed),
and is freed once closed: a process that makes many apps (the test suite) does not keep them all."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from ledger.config import Settings
from scripts.db import upgrade_store


def test_only_a_long_lived_app_freezes_its_start_up_objects(database_url: str, tmp_path: Path) -> None:
    upgrade_store(database_url, keys_dir=tmp_path / "keys")
    settings = Settings(database_url=database_url, keys_dir=tmp_path / "keys")
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    try:
        with TestClient(create_app(settings)):
            assert gc.get_freeze_count() == frozen and gc.get_threshold() == threshold
        with TestClient(create_app(settings, long_lived=True)) as client:
            assert gc.get_freeze_count() > frozen + 10_000  # the modules, the read side, ...
            assert gc.get_threshold()[0] == 20_000
            assert client.get("/health").status_code == 200
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_a_closed_app_is_freed(database_url: str, tmp_path: Path) -> None:
    """FastAPI keeps every endpoint in module-level LRU caches (4,096 entries): an endpoint closing over
    its app kept each app alive there, ~36,000 objects each, until the suite's full collections took
    over 5 s and PostgreSQL ended a transaction open across one (idle-in-transaction timeout)."""
    upgrade_store(database_url, keys_dir=tmp_path / "keys")
    app = create_app(Settings(database_url=database_url, keys_dir=tmp_path / "keys"))
    with TestClient(app) as client:
        assert client.get("/ready").status_code == 401  # every route's dependencies resolved once
        assert client.get("/health").status_code == 200
    freed = weakref.ref(app)
    del app, client
    gc.collect()
    assert freed() is None
