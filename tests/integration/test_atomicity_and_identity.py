"""All-or-nothing steps and identity on both stores: a refused step leaves no trace in either table."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from uuid import uuid4

import pytest

from ledger.application import Ledger
from ledger.domain import Kit, KitStatus, Lot, ManufacturingBatch, Shipment
from ledger.domain.base import stamp
from ledger.errors import (
    AlreadyExists,
    BatchNotFound,
    ConcurrentWriteConflict,
    InsufficientQuantity,
    KitsNotUsable,
    LotNotFound,
    ShipmentNotFound,
)
from ledger.recorders import Expectations, StaleRead
from ledger.values import Quantity
from ledger.verify import verify_chain
from tests.builders import (
    API_GTIN,
    DP_GTIN,
    EXCIPIENT_GTIN,
    Program,
    actors,
    writes_nothing,
)


@pytest.fixture
def program(ledger: Ledger) -> Program:
    return Program.released(ledger)


def test_shipment_whose_last_kit_is_not_usable_records_nothing(program: Program) -> None:
    ledger = program.ledger
    program.ship(["K00004"])  # K00004 is now in transit
    numbers = ["K00001", "K00002", "K00003", "K00004"]
    versions = {n: ledger.get(Kit, program.kit(n)).version for n in numbers}
    with writes_nothing(ledger, KitsNotUsable) as info:
        program.ship(numbers, shipment_number="S-2", serial=2)
    assert [p["kit_number"] for p in info.value.details["problems"]] == ["K00004"]
    for number in numbers[:3]:
        kit = ledger.get(Kit, program.kit(number))
        assert (kit.status, kit.version, kit.shipment_id) == (KitStatus.AVAILABLE, versions[number], None)
    with pytest.raises(ShipmentNotFound):
        ledger.get(Shipment, Shipment.create_id("S-2"))
    assert verify_chain(ledger.chain).ok


def test_formulation_whose_third_lot_is_over_consumed_records_nothing(program: Program) -> None:
    ledger = program.ledger
    exc2 = program.receive(gtin=EXCIPIENT_GTIN, lot_number="EXC-2", kind="excipient", quantity="1 kg")
    lots = [program.api, program.excipient, exc2]
    before = {lot: (ledger.get(Lot, lot).version, ledger.get(Lot, lot).remaining) for lot in lots}
    with writes_nothing(ledger, InsufficientQuantity, match="EXC-2"):
        program.formulate_batch([(program.api, "100 g"), (program.excipient, "1 kg"), (exc2, "1001 g")])
    assert {lot: (ledger.get(Lot, lot).version, ledger.get(Lot, lot).remaining) for lot in lots} == before
    with pytest.raises(BatchNotFound):
        ledger.get(ManufacturingBatch, ManufacturingBatch.create_id("B-2"))
    with pytest.raises(LotNotFound):
        ledger.get(Lot, Lot.create_id(DP_GTIN, "DP-2"))
    assert verify_chain(ledger.chain).ok


def test_a_stale_write_is_a_conflict_and_records_nothing(
    program: Program,
    open_ledger: Callable[[], Ledger],
) -> None:
    # A second ledger loads API-1, then the first consumes from it: the second's save is stale.
    other = open_ledger()
    stale = other.get(Lot, program.api)
    program.formulate_batch([(program.api, "100 g")])
    stale.consume(stamp(actors.mfg), Quantity.of("1", "g"), uuid4(), "formulation")
    with writes_nothing(program.ledger, ConcurrentWriteConflict):
        other.record(stale)
    assert program.ledger.get(Lot, program.api).remaining == Quantity(Decimal("1.4"), "kg")


def test_a_write_refused_under_the_write_lock_stores_nothing(program: Program) -> None:
    # The write expects API-1 still at the version it read; API-1 moved on, so the recorder refuses
    # the write under the store's lock. On PostgreSQL the refusal must roll the events back too
    # (a refusal raised after the library's insert once committed them without their chain rows).
    ledger = program.ledger
    lot = ledger.get(Lot, program.excipient)
    lot.consume(stamp(actors.mfg), Quantity.of("1", "g"), uuid4(), "formulation")
    read = ledger.get(Lot, program.api).version
    program.formulate_batch([(program.api, "100 g")])
    ledger.chain.expect(Expectations(versions={program.api: read}))
    try:
        with writes_nothing(ledger, StaleRead, match="moved from version"):
            ledger.save(lot)
    finally:
        ledger.chain.expect(None)  # as the ledger's own writes do once their save has returned
    assert ledger.chain.unchained_events() == []
    assert verify_chain(ledger.chain).ok


@pytest.mark.parametrize("with_versions", [False, True], ids=["quiet streams only", "and versions"])
def test_a_write_expecting_streams_quiet_since_a_position_is_refused_when_one_moved(
    program: Program, with_versions: bool
) -> None:
    # What a recall opened from a read model expects: no event of its kits after the position it read
    # them at. Checked under the write lock, in the same round trip as the head on PostgreSQL.
    ledger = program.ledger
    position = ledger.chain.head()[0]
    program.formulate_batch([(program.api, "100 g")])  # API-1 moves after `position`
    lot = ledger.get(Lot, program.excipient)
    versions = {program.excipient: lot.version} if with_versions else {}
    lot.consume(stamp(actors.mfg), Quantity.of("1", "g"), uuid4(), "formulation")
    ledger.chain.expect(Expectations(versions, position, frozenset({program.api})))
    try:
        with writes_nothing(ledger, StaleRead, match=f"{program.api} changed after position {position}"):
            ledger.save(lot)
    finally:
        ledger.chain.expect(None)
    lot = ledger.get(Lot, program.excipient)  # the refused save took the pending event with it
    lot.consume(stamp(actors.mfg), Quantity.of("1", "g"), uuid4(), "formulation")
    ledger.chain.expect(Expectations(versions, ledger.chain.head()[0], frozenset({program.api})))
    try:
        ledger.save(lot)  # quiet since the newer position, and the versions still hold: written
    finally:
        ledger.chain.expect(None)
    assert ledger.get(Lot, program.excipient).version == lot.version
    assert verify_chain(ledger.chain).ok


def test_registering_the_same_lot_twice_is_refused_on_every_store(program: Program) -> None:
    with writes_nothing(program.ledger, AlreadyExists, match="API-1"):
        program.receive(gtin=API_GTIN, lot_number="API-1", kind="api", quantity="1 kg", release=False)
    assert program.ledger.get(Lot, program.api).received == Quantity(Decimal(2), "kg")
