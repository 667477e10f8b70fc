"""Verification streams the chain in pages: a store of a few thousand events, read a page at a time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ledger.application import Ledger
from ledger.recorders import ChainReader, ChainRow, ChainWalk
from ledger.verify import verify_chain
from tests.builders import Program
from tests.integration.rawdb import RawStore

PAGE = 97  # small and prime, so no page boundary lines up with a step of the program


@pytest.fixture
def big(ledger: Ledger) -> Program:
    """3000 kits packaged in one run: just over 3000 events."""
    program = Program(ledger).reference().materials()
    program.formulate(yield_units=2600, theoretical_units=2700).placebo()
    return program.package(active_kits=2500, placebo_kits=500, units_per_kit=1)


@pytest.fixture
def pages(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int, int]]:
    """Make every chain walk use PAGE-row pages; records (after_seq, limit, rows returned) per page,
    whichever read the store's audit walk uses (SQLite's by row number, or the join on the key)."""
    seen: list[tuple[int, int, int]] = []
    recorder = type(ledger.chain)
    read_page = recorder._chain_page
    iter_chain = ChainReader.iter_chain
    walk = ChainReader.walk

    def recording_page(self: Any, after_seq: int, limit: int) -> list[ChainRow]:
        rows = read_page(self, after_seq, limit)
        seen.append((after_seq, limit, len(rows)))
        return rows

    def small_pages(self: Any, after_seq: int = 0, page: int = 2000) -> Iterator[ChainRow]:
        return iter_chain(self, after_seq, page=PAGE)

    def small_walk(self: Any, page: int = 20_000) -> ChainWalk:
        return walk(self, page=PAGE)

    monkeypatch.setattr(recorder, "_chain_page", recording_page)
    monkeypatch.setattr(ChainReader, "iter_chain", small_pages)
    monkeypatch.setattr(ChainReader, "walk", small_walk)
    if hasattr(recorder, "_walk_page"):
        read_walk_page = recorder._walk_page

        def recording_walk_page(self: Any, after_seq: int, limit: int) -> tuple[list[Any], int | None]:
            rows, stored = read_walk_page(self, after_seq, limit)
            seen.append((after_seq, limit, len(rows)))
            return rows, stored

        monkeypatch.setattr(recorder, "_walk_page", recording_walk_page)
    return seen


def test_verification_reads_a_few_thousand_events_a_page_at_a_time(
    big: Program,
    pages: list[tuple[int, int, int]],
) -> None:
    size, head = big.ledger.chain.head()
    assert size > 3000
    report = verify_chain(big.ledger.chain)
    assert report.ok, report.describe()
    assert (report.count, report.head_hash) == (size, head.hex())
    # Consecutive pages of at most PAGE rows, each starting where the last one ended.
    assert len(pages) == size // PAGE + 1
    assert [after for after, _, _ in pages] == [i * PAGE for i in range(len(pages))]
    assert all(limit == PAGE and rows <= PAGE for _, limit, rows in pages)
    assert sum(rows for _, _, rows in pages) == size


def test_tampering_deep_in_the_log_is_found_at_its_position(
    big: Program,
    raw: RawStore,
    open_ledger: Callable[[], Ledger],
    pages: list[tuple[int, int, int]],
) -> None:
    last_kit = big.kit("K03000")
    seq = raw.seq_of(last_kit, 1)
    assert seq > 30 * PAGE
    raw.disable_triggers()
    topic, state = raw.event(last_kit, 1)
    raw.set_event(last_kit, 1, topic, state.replace(b'"label_version":"v1"', b'"label_version":"v2"'))

    report = verify_chain(open_ledger().chain)
    assert not report.ok and report.failure is not None
    assert (report.failure.seq, report.failure.stream, report.failure.version) == (seq, str(last_kit), 1)
    assert report.count == seq - 1
    assert len(pages) == (seq - 1) // PAGE + 1, "verification stopped at the page holding the failure"


def test_default_page_size_crosses_a_page_boundary_too(big: Program) -> None:
    size, head = big.ledger.chain.head()
    assert size > 2000  # more than one default page
    report = verify_chain(big.ledger.chain)
    assert report.ok and (report.count, report.head_hash) == (size, head.hex())
