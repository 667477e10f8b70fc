"""A shipment racing the opening of a recall, from two ledgers on one store (two API processes).

Both writers load and check everything, then wait at a barrier and write at the same moment. Whatever
the interleaving, a kit of a recalled lot never ships after the recall opened: either the shipment
lands first and the recall records the kit as shipped (in transit), or the recall lands first and
the shipment is refused because its lot is recalled. Many rounds, both stores.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from uuid import UUID

from ledger.application import Ledger
from ledger.commands import OpenRecall, Recorded, Ship
from ledger.domain import Kit
from ledger.domain.recall import Recall
from ledger.domain.whereabouts import KitStatus
from ledger.errors import KitsNotUsable
from ledger.values import Meaning, sign
from ledger.verify import verify_chain
from tests.builders import API_GTIN, Program, actors, sscc

ROUNDS = 12
KITS_PER_ROUND = 2


def write_together(barrier: threading.Barrier, ledger: Ledger) -> None:
    """Make `ledger`'s first write of each round wait at `barrier`: both sides have read and checked.
    A retried write (after losing the race) goes straight through."""
    record = ledger.record
    waited = threading.local()

    def record_when_both_ready(*aggregates: Any, **kwargs: Any) -> Recorded:
        if getattr(waited, "round", None) != barrier:
            waited.round = barrier
            barrier.wait(timeout=30)
        return record(*aggregates, **kwargs)

    ledger.record = record_when_both_ready  # type: ignore[method-assign]


def run_both(first: Callable[[], Recorded], second: Callable[[], Recorded]) -> list[Any]:
    results: list[Any] = [None, None]

    def run(i: int, step: Callable[[], Recorded]) -> None:
        try:
            results[i] = step()
        except Exception as e:  # the outcome is what the test asserts on
            results[i] = e

    threads = [threading.Thread(target=run, args=(i, s)) for i, s in enumerate((first, second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive(), "a writer hung"
    return results


def a_released_run(program: Program, n: int) -> tuple[UUID, list[str]]:
    """A fresh API lot made into a drug-product lot and packaged into kits released for DE."""
    api = program.receive(gtin=API_GTIN, lot_number=f"API-Q{n}", kind="api", quantity="100 g")
    _, program.dp = program.formulate_batch(
        [(api, "10 g"), (program.excipient, "10 g")], batch_number=f"B-Q{n}", lot_number=f"DP-Q{n}"
    )
    program.release(program.dp)
    prefix = f"Q{n:02d}-"
    program.package(active_kits=KITS_PER_ROUND, placebo_kits=0, batch_number=f"P-Q{n}", kit_prefix=prefix)
    program.release_run()
    return api, [f"{prefix}{i:05d}" for i in range(1, KITS_PER_ROUND + 1)]


def test_a_recall_racing_a_shipment_never_lets_a_recalled_kit_ship(
    open_ledger: Callable[[], Ledger],
) -> None:
    program = Program(open_ledger()).reference().materials().placebo()
    shipper, recaller = open_ledger(), open_ledger()
    outcomes = {"shipped first": 0, "recalled first": 0}
    for n in range(ROUNDS):
        api, numbers = a_released_run(program, n)
        kit_ids = program.kits(*numbers)
        barrier = threading.Barrier(2)
        write_together(barrier, shipper)
        write_together(barrier, recaller)
        ship = Ship(
            shipment_number=f"S-Q{n}", sscc=sscc(1000 + n), from_id=program.depot, to_id=program.site,
            kit_ids=kit_ids, min_celsius=Decimal(2), max_celsius=Decimal(8), logger_id="LOG-1",
            carrier="ColdChain",
        )
        recall = OpenRecall(
            recall_number=f"RC-Q{n}", lot_ids=[api], reason="impurity", classification="class_ii",
            scope="all_kits", signature=sign(actors.qa, Meaning.APPROVED),
        )
        shipped, opened = run_both(
            lambda s=ship: shipper.handle(s, actors.depot),  # type: ignore[misc]
            lambda r=recall: recaller.handle(r, actors.qa),  # type: ignore[misc]
        )
        assert isinstance(opened, Recorded), f"round {n}: the recall did not open: {opened!r}"
        kept = program.ledger.get(Recall, opened.id)
        statuses = {kept.kits[k].kit_number: kept.kits[k].status_at_open for k in kit_ids}
        if isinstance(shipped, Recorded):
            outcomes["shipped first"] += 1
            # The shipment landed before the recall, and the recall knows the kits are on their way.
            assert shipped.position < opened.events[0].seq, f"round {n}: shipped after the recall opened"
            assert statuses == dict.fromkeys(numbers, KitStatus.IN_TRANSIT), f"round {n}: {statuses}"
            in_transit = {(s["shipment_id"], s["kits"]) for s in kept.shipments_in_transit}
            assert in_transit == {(str(shipped.id), KITS_PER_ROUND)}, f"round {n}: {in_transit}"
        else:
            outcomes["recalled first"] += 1
            assert isinstance(shipped, KitsNotUsable), f"round {n}: {shipped!r}"
            reasons = {p["reason"] for p in shipped.details["problems"]}
            assert all("recalled" in r for r in reasons), f"round {n}: {reasons}"
            assert KitStatus.IN_TRANSIT not in statuses.values(), f"round {n}: {statuses}"
            for kit in program.ledger.get_many(Kit, kit_ids):
                assert kit.shipment_id is None, f"round {n}: kit {kit.kit_number} shipped anyway"
        shipper.record = type(shipper).record.__get__(shipper)  # type: ignore[method-assign]
        recaller.record = type(recaller).record.__get__(recaller)  # type: ignore[method-assign]
        # a refused write leaves nothing behind: every stored event is on the chain
        assert program.ledger.chain.unchained_events() == [], f"round {n}"
    report = verify_chain(program.ledger.chain)
    assert report.ok, report.describe()
    assert sum(outcomes.values()) == ROUNDS
