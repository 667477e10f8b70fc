"""Two writers racing for the last grams of a lot: one wins, the other is refused, the chain never forks."""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from ledger.application import Ledger
from ledger.domain import Lot, ManufacturingBatch
from ledger.errors import BatchNotFound, ConcurrentWriteConflict, InsufficientQuantity
from ledger.values import Quantity
from ledger.verify import verify_chain
from tests.builders import API_GTIN, Program

ROUNDS = 5


def race(writers: list[Callable[[], Any]]) -> list[Any]:
    """Run each writer in its own thread at once; what each returned or raised."""
    results: list[Any] = [None] * len(writers)

    def run(i: int) -> None:
        try:
            results[i] = writers[i]()
        except Exception as e:  # the outcome is what we assert on
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(writers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive(), "a writer hung"
    return results


def hold_saves_at(barrier: threading.Barrier, ledger: Ledger) -> None:
    """Make `ledger` wait at `barrier` just before it writes: both writers have loaded and checked."""
    save = ledger.record

    def save_when_both_ready(*aggregates: Any, **kwargs: Any) -> Any:
        barrier.wait()
        return save(*aggregates, **kwargs)

    ledger.record = save_when_both_ready  # type: ignore[method-assign]


def a_round(program: Program, writers: list[Program], n: int) -> tuple[UUID, list[Any]]:
    """A fresh 100 g API lot; two writers each formulate 60 g of it at the same moment."""
    lot = program.receive(gtin=API_GTIN, lot_number=f"API-R{n}", kind="api", quantity="100 g")
    attempts = [
        (
            lambda w=w, side=side: w.formulate_batch(
                [(lot, "60 g")], batch_number=f"B-R{n}{side}", lot_number=f"DP-R{n}{side}"
            )
        )
        for w, side in zip(writers, "ab", strict=True)
    ]
    return lot, race(attempts)


def check_round(
    ledger: Ledger, lot: UUID, n: int, results: list[Any], losers: tuple[type[Exception], ...]
) -> None:
    winners = [r for r in results if isinstance(r, tuple)]
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(winners) == 1, f"round {n}: {results!r}"
    assert len(errors) == 1 and isinstance(errors[0], losers), f"round {n}: {results!r}"
    # Exactly one consumption happened: 100 g - 60 g, never -20 g, never 100 g.
    stock = ledger.get(Lot, lot)
    assert stock.remaining == Quantity(Decimal(40), "g")
    assert stock.version == 3  # received, released, consumed once
    assert stock.consumed_by == [winners[0][0]]
    batches = [ManufacturingBatch.create_id(f"B-R{n}{side}") for side in "ab"]
    recorded = [b for b in batches if b in ledger.repository]
    assert recorded == [winners[0][0]]
    with pytest.raises(BatchNotFound):
        ledger.get(ManufacturingBatch, next(b for b in batches if b != winners[0][0]))


def check_chain(ledger: Ledger) -> None:
    report = verify_chain(ledger.chain)
    assert report.ok, report.describe()
    seqs = [row.seq for row in ledger.chain.iter_chain()]
    assert seqs == list(range(1, len(seqs) + 1)), "the chain forked or has a gap"
    assert report.count == len(seqs) == ledger.chain.count_events()


@pytest.fixture
def racers(open_ledger: Callable[[], Ledger]) -> tuple[Program, list[Program]]:
    """A set-up program, and two independent writers (separate ledgers) on the same database."""
    program = Program(open_ledger()).reference().materials()
    writers = []
    for _ in range(2):
        writer = Program(open_ledger())
        writer.plant = program.plant
        writer.dp_expires_on = program.dp_expires_on
        writers.append(writer)
    return program, writers


def test_writers_that_both_loaded_the_lot_cannot_both_consume_it(
    racers: tuple[Program, list[Program]],
) -> None:
    program, writers = racers
    for n in range(ROUNDS):
        barrier = threading.Barrier(2, timeout=30)
        for writer in writers:
            hold_saves_at(barrier, writer.ledger)
        lot, results = a_round(program, writers, n)
        # Both checked 60 g against 100 g before either wrote, so the loser's write is a conflict; the
        # ledger runs the loser again on the newer lot, where 60 g no longer fit: a business refusal.
        check_round(program.ledger, lot, n, results, (InsufficientQuantity,))
    check_chain(program.ledger)


def test_free_race_for_the_last_units_lets_exactly_one_writer_win(
    racers: tuple[Program, list[Program]],
) -> None:
    program, writers = racers
    for n in range(ROUNDS):
        lot, results = a_round(program, writers, n)
        # Depending on timing the loser saw the lot before (conflict) or after (too little left).
        check_round(program.ledger, lot, n, results, (ConcurrentWriteConflict, InsufficientQuantity))
    check_chain(program.ledger)
