"""Integration-tier fixtures: the ledger on both stores (via `database_url`) and raw table access."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from ledger.application import Ledger
from tests.integration.rawdb import RawStore


@pytest.fixture
def open_ledger(database_url: str) -> Iterator[Callable[[], Ledger]]:
    """Opens ledgers on this test's database (as many as the test needs); closes them afterwards."""
    opened: list[Ledger] = []

    def open_() -> Ledger:
        ledger = Ledger.open(database_url)
        opened.append(ledger)
        return ledger

    yield open_
    for ledger in opened:
        ledger.close()


@pytest.fixture
def ledger(open_ledger: Callable[[], Ledger]) -> Ledger:
    """An empty ledger on SQLite, then on a fresh PostgreSQL database."""
    return open_ledger()


@pytest.fixture
def raw(database_url: str, ledger: Ledger) -> Iterator[RawStore]:
    """The same database (its tables created by `ledger`), reached behind the ledger's back."""
    store = RawStore(database_url, ledger.chain.events_table_name)
    yield store
    store.close()
