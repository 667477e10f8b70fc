"""Unit-tier fixtures: a ledger on a fresh SQLite file, and a program released up to shipping."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from ledger.application import Ledger
from tests.builders import Program


@pytest.fixture
def ledger(new_store: Callable[[str, str], str]) -> Iterator[Ledger]:
    """An empty ledger on a SQLite file of its own."""
    ledger = Ledger.open(new_store("sqlite", "unit"))
    yield ledger
    ledger.close()


@pytest.fixture
def program(ledger: Ledger) -> Program:
    """Trial, locations, released lots, DP-1 and placebo, 6 active + 4 placebo kits released for DE."""
    return Program.released(ledger)
