"""Verification streams the chain in pages: a store of a few thousand events, read a page at a time."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ledger import verify as ledger_verify
from ledger.application import Ledger
from ledger.recorders import ChainReader, ChainRow, ChainWalk
from ledger.store import open_chain
from ledger.verify import Helpers, Report, verify_chain
from tests.builders import Program
from tests.integration.rawdb import CHAIN, RawStore

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
    whichever read the store's audit walk uses (SQLite's by row number, PostgreSQL's side by side, or
    the join on the key)."""
    seen: list[tuple[int, int, int]] = []
    recorder = type(ledger.chain)
    read_page = recorder._chain_page
    iter_chain = ChainReader.iter_chain
    walk = ChainReader.walk

    def recording_page(self: Any, after_seq: int, limit: int) -> list[ChainRow]:
        rows = read_page(self, after_seq, limit)
        seen.append((after_seq, limit, len(rows)))
        return rows

    def small_pages(
        self: Any, after_seq: int = 0, page: int = 2000, until: int | None = None
    ) -> Iterator[ChainRow]:
        return iter_chain(self, after_seq, page=PAGE, until=until)

    def small_walk(self: Any, page: int = 20_000, after: int = 0, until: int | None = None) -> ChainWalk:
        return walk(self, page=PAGE, after=after, until=until)

    monkeypatch.setattr(recorder, "_chain_page", recording_page)
    monkeypatch.setattr(ChainReader, "iter_chain", small_pages)
    monkeypatch.setattr(ChainReader, "walk", small_walk)
    if hasattr(recorder, "_walk_page"):
        read_walk_page = recorder._walk_page

        def recording_walk_page(self: Any, after_seq: int, until: int, limit: int, **kw: Any) -> Any:
            found = read_walk_page(self, after_seq, until, limit, **kw)
            rows = found[0] if isinstance(found, tuple) else found  # SQLite's: with the events' count
            seen.append((after_seq, limit, len(rows)))
            return found

        monkeypatch.setattr(recorder, "_walk_page", recording_walk_page)
    if hasattr(recorder, "_side_by_side"):  # PostgreSQL's: chain rows and events read side by side
        side_by_side = recorder._side_by_side

        def recording_side_by_side(
            self: Any, after_seq: int, until: int, mark: int, limit: int, curs: Any
        ) -> Any:
            links, events = side_by_side(self, after_seq, until, mark, limit, curs)
            seen.append((after_seq, limit, len(links)))
            return links, events

        monkeypatch.setattr(recorder, "_side_by_side", recording_side_by_side)
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


# --- parts walked side by side ---------------------------------------------------------------------------


@pytest.fixture
def helpers_started(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int | None]]:
    """The (after, until) of every part a helper process is started for."""
    started: list[tuple[int, int | None]] = []

    class Recorded(ledger_verify._Helper):
        def __init__(self, helpers: Helpers, after: int, until: int | None) -> None:
            started.append((after, until))
            super().__init__(helpers, after, until)

    monkeypatch.setattr(ledger_verify, "_Helper", Recorded)
    return started


def in_parts(database_url: str, processes: int) -> Helpers:
    return Helpers(processes, functools.partial(open_chain, database_url), min_part=500)


def walked(reader: ChainReader, helpers: Helpers | None = None) -> tuple[Report, bytes]:
    """The report and every leaf handed on, checked to come in order without a gap."""
    leaves = bytearray()

    def on_leaves(after: int, run: bytes) -> None:
        assert after == len(leaves) // 32 and run and len(run) % 32 == 0
        leaves.extend(run)

    return verify_chain(reader, on_leaves=on_leaves, helpers=helpers), bytes(leaves)


def test_parts_walked_side_by_side_report_what_one_walk_reports(
    big: Program,
    database_url: str,
    pages: list[tuple[int, int, int]],
    helpers_started: list[tuple[int, int | None]],
) -> None:
    size, head = big.ledger.chain.head()
    alone, alone_leaves = walked(big.ledger.chain)
    assert (alone.count, alone.head_hash) == (size, head.hex())
    assert alone.ok and len(alone_leaves) == 32 * size
    pages.clear()
    together, together_leaves = walked(big.ledger.chain, in_parts(database_url, 3))
    assert together == alone and together_leaves == alone_leaves
    # The caller walks the first and smallest part; two helpers the rest, the last to the end.
    first = helpers_started[0][0]
    assert helpers_started == [(first, helpers_started[1][0]), (helpers_started[1][0], None)]
    assert 500 < first < helpers_started[1][0] - first
    assert [after for after, _, _ in pages] == [i * PAGE for i in range(len(pages))], "the caller's pages"
    assert pages[-1][0] < first <= pages[-1][0] + PAGE


def test_a_chain_too_short_to_share_is_walked_alone(
    big: Program, database_url: str, helpers_started: list[tuple[int, int | None]]
) -> None:
    size = big.ledger.chain.head()[0]
    helpers = Helpers(4, functools.partial(open_chain, database_url), min_part=size)
    assert verify_chain(big.ledger.chain, helpers=helpers).ok
    assert helpers_started == []


def test_tampering_in_a_helpers_part_is_found_at_its_position(
    big: Program, raw: RawStore, database_url: str, open_ledger: Callable[[], Ledger],
    helpers_started: list[tuple[int, int | None]],
) -> None:
    last_kit = big.kit("K03000")
    seq = raw.seq_of(last_kit, 1)
    raw.disable_triggers()
    topic, state = raw.event(last_kit, 1)
    raw.set_event(last_kit, 1, topic, state.replace(b'"label_version":"v1"', b'"label_version":"v2"'))

    alone, alone_leaves = walked(open_ledger().chain)
    together, together_leaves = walked(open_ledger().chain, in_parts(database_url, 3))
    assert helpers_started[-1][0] < seq, "the event lies in the last helper's part"
    assert together == alone and together_leaves == alone_leaves
    assert together.failure is not None and (together.failure.seq, together.count) == (seq, seq - 1)
    assert len(together_leaves) == 32 * (seq - 1), "a leaf for every event before it, none after"


@pytest.mark.parametrize("offset", [-1, 0, 1], ids=["before the seam", "at the seam", "after the seam"])
def test_a_chain_entry_deleted_at_a_seam_between_parts_is_named(
    big: Program, raw: RawStore, database_url: str, open_ledger: Callable[[], Ledger], offset: int
) -> None:
    seam = in_parts(database_url, 2).bounds(big.ledger.chain.head()[0])[0][1]
    assert seam is not None
    seq = seam + offset
    raw.disable_triggers()
    raw.execute(f"DELETE FROM {CHAIN} WHERE seq = ?", (seq,))

    alone = verify_chain(open_ledger().chain)
    together = verify_chain(open_ledger().chain, helpers=in_parts(database_url, 2))
    assert together == alone
    assert together.failure is not None and together.failure.seq == seq
    assert f"chain entry {seq} is missing (next entry is {seq + 1})" in together.failure.reason
