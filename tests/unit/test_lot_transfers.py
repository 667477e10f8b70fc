"""A lot moves between places only by a recorded transfer: sent by the place holding it, received by
the place it was sent to, and used (formulated, packaged) only where it is."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

import pytest

from ledger.application import Ledger
from ledger.commands import (
    Arm,
    Formulate,
    HoldLot,
    OutputLot,
    Package,
    RecallLot,
    ReceiveLotTransfer,
    RegisterLocation,
    TransferLot,
)
from ledger.domain import Lot, LotStatus
from ledger.errors import (
    InvalidInput,
    LocationNotFound,
    LotNotHere,
    LotNotUsable,
    NotAuthorised,
    NotBoundHere,
    TimeOrderViolation,
)
from ledger.gs1 import with_check_digit
from ledger.values import Actor, Meaning, Quantity, Role, sign
from tests.builders import DP_GTIN, KIT_GTIN, Program, actors, q, writes_nothing


@pytest.fixture
def made(ledger: Ledger) -> Program:
    """DP-1 made and released at the plant, the placebo lot bought in at the plant; nothing moved."""
    return Program(ledger).reference().materials().formulate().placebo()


def package(p: Program, at: UUID, batch_number: str = "P-1") -> UUID:
    return p.ledger.handle(
        Package(
            batch_number=batch_number,
            trial_id=p.trial,
            location_id=at,
            kit_gtin=KIT_GTIN,
            label_version="v1",
            arms=[Arm("A", p.dp, 10, 20), Arm("P", p.placebo_lot, 10, 20)],
            kit_list=[("K00001", "A"), ("K00002", "A"), ("K00003", "P"), ("K00004", "P")],
            checked_by=actors.mfg2,
        ),
        actors.mfg,
    ).id


def send(p: Program, lot: UUID, to: UUID, *, by: Actor = actors.mfg, number: str = "TR-1") -> None:
    p.ledger.handle(TransferLot(lot_id=lot, transfer_number=number, from_id=p.plant, to_id=to), by)


def receive(p: Program, lot: UUID, at: UUID, *, by: Actor = actors.depot, **options: object) -> None:
    p.ledger.handle(ReceiveLotTransfer(lot_id=lot, location_id=at, **options), by)  # type: ignore[arg-type]


def lot(p: Program, lot_id: UUID) -> Lot:
    return p.ledger.get(Lot, lot_id)


def test_packaging_where_the_drug_product_lot_is_not_is_refused_until_it_is_moved(made: Program) -> None:
    with writes_nothing(made.ledger, LotNotHere, "lot DP-1 is not at this place: it is not held here"):
        package(made, made.depot)
    send(made, made.dp, made.depot)
    send(made, made.placebo_lot, made.depot, number="TR-2")
    moving = lot(made, made.dp)
    assert (moving.location_id, moving.in_transit_to) == (made.plant, made.depot)
    with writes_nothing(made.ledger, LotNotHere, "not held here"):  # in transit
        package(made, made.depot)
    receive(made, made.dp, made.depot)
    receive(made, made.placebo_lot, made.depot)
    arrived = lot(made, made.dp)
    assert (arrived.location_id, arrived.in_transit_to) == (made.depot, None)
    assert arrived.status == LotStatus.RELEASED
    assert arrived.remaining == Quantity.of(980, "unit")  # all of it moved, nothing used yet
    package(made, made.depot)
    assert lot(made, made.dp).remaining == Quantity.of(960, "unit")
    # and the plant, which no longer holds it, cannot package it
    with writes_nothing(made.ledger, LotNotHere, "not held here"):
        package(made, made.plant, "P-2")


def test_formulation_uses_only_lots_held_at_its_plant(made: Program) -> None:
    send(made, made.api, made.depot)
    with writes_nothing(made.ledger, LotNotHere, "lot API-1 is not at this place: it is not held here"):
        made.formulate_batch([(made.api, "100 g"), (made.excipient, "100 g")])
    receive(made, made.api, made.depot)
    with writes_nothing(made.ledger, LotNotHere, "lot API-1 is not at this place: it is not held here"):
        made.formulate_batch([(made.api, "100 g"), (made.excipient, "100 g")])


def test_a_lot_is_sent_only_from_where_it_is(made: Program) -> None:
    L = made.ledger
    with writes_nothing(L, LotNotHere, "not held here; transfer it here before sending it"):
        L.handle(TransferLot(lot_id=made.dp, transfer_number="TR-1", from_id=made.depot, to_id=made.plant),
                 actors.depot)
    with writes_nothing(L, InvalidInput, "a transfer goes to another place"):
        send(made, made.dp, made.plant)
    with writes_nothing(L, InvalidInput, "is a clinical_site"):
        send(made, made.dp, made.site)
    with writes_nothing(L, LocationNotFound):
        send(made, made.dp, UUID(int=7))
    send(made, made.dp, made.depot)
    with writes_nothing(L, LotNotHere, "not held here"):  # in transit: not sent twice
        send(made, made.dp, made.depot, number="TR-2")


def test_a_lot_is_received_only_where_it_was_sent_and_only_once(made: Program) -> None:
    L = made.ledger
    # not travelling, travelling elsewhere, already received: one refusal that says nothing more
    with writes_nothing(L, LotNotHere, "it is not on its way here"):
        receive(made, made.dp, made.depot)
    send(made, made.dp, made.depot)
    with writes_nothing(L, LotNotHere, "it is not on its way here"):
        receive(made, made.dp, made.plant, by=actors.mfg)
    receive(made, made.dp, made.depot)
    with writes_nothing(L, LotNotHere, "it is not on its way here"):
        receive(made, made.dp, made.depot)


def test_each_end_of_a_transfer_is_done_by_someone_bound_there(made: Program) -> None:
    at_depot = Actor("depot7", Role.DEPOT, "Dora Depot", places=(made.depot,))
    at_plant = Actor("mfg7", Role.MANUFACTURING, "Milo Maker", places=(made.plant,))
    with writes_nothing(made.ledger, NotBoundHere):
        send(made, made.dp, made.depot, by=at_depot)  # the depot cannot send what the plant holds
    with writes_nothing(made.ledger, NotAuthorised):  # site users do not move lots at all
        send(made, made.dp, made.depot, by=actors.site)
    send(made, made.dp, made.depot, by=at_plant)
    with writes_nothing(made.ledger, NotBoundHere):
        receive(made, made.dp, made.depot, by=at_plant)
    receive(made, made.dp, made.depot, by=at_depot)


def test_a_lot_that_arrives_damaged_is_put_on_hold_with_the_remarks(made: Program) -> None:
    send(made, made.dp, made.depot)
    with writes_nothing(made.ledger, InvalidInput, "needs remarks"):
        receive(made, made.dp, made.depot, intact=False)
    receive(made, made.dp, made.depot, intact=False, remarks="two cartons crushed, seals broken")
    held = lot(made, made.dp)
    assert (held.location_id, held.status) == (made.depot, LotStatus.ON_HOLD)
    last = list(made.ledger.events.get(made.dp))[-1]
    assert type(last).__name__ == "TransferReceived"
    assert last.audit["reason"] == "two cartons crushed, seals broken"


def test_a_quarantined_lot_may_travel_but_a_rejected_or_recalled_one_may_not(made: Program) -> None:
    L = made.ledger
    L.handle(HoldLot(lot_id=made.excipient, reason="supplier audit finding"), actors.qa)
    send(made, made.excipient, made.depot)  # on hold: QA decides on it wherever it is
    L.handle(RecallLot(lot_id=made.dp, signature=sign(actors.qa, Meaning.APPROVED), reason="OOS"), actors.qa)
    with writes_nothing(L, LotNotUsable, "status is recalled; it is not transferred"):
        send(made, made.dp, made.depot)


def test_a_lot_used_up_has_nothing_to_transfer(ledger: Ledger) -> None:
    p = Program(ledger).reference().materials()
    p.formulate(api="500 g", excipient="2 kg")
    p.formulate_batch([(p.api, "1500 g"), (p.excipient, "1 kg")])  # API-1 held 2 kg
    with writes_nothing(ledger, LotNotUsable, "nothing of it remains"):
        send(p, p.api, p.depot)


def test_receipt_is_not_dated_before_its_shipment(made: Program) -> None:
    send(made, made.dp, made.depot)
    shipped_at = lot(made, made.dp).last_occurred_at
    earlier = datetime.fromisoformat(shipped_at) - timedelta(hours=1)
    with writes_nothing(made.ledger, TimeOrderViolation):
        receive(made, made.dp, made.depot, occurred_at=earlier)


def test_a_formulation_at_a_second_plant_needs_its_lots_moved_there(made: Program) -> None:
    second = made.ledger.handle(
        RegisterLocation(gln=with_check_digit("400000000019"), kind="manufacturing_site", name="Plant 2",
                         country="DE"),
        actors.admin,
    ).id
    for lot_id, number in ((made.api, "TR-A"), (made.excipient, "TR-E")):
        send(made, lot_id, second, number=number)
        receive(made, lot_id, second, by=actors.mfg)
    _, dp = made.ledger.handle(
        Formulate(
            batch_number="B-2",
            product="Lotlinib 10 mg",
            location_id=second,
            inputs=[(made.api, q("100 g")), (made.excipient, q("400 g"))],
            output=OutputLot(DP_GTIN, "DP-2", "Lotlinib 10 mg tablets", made.dp_expires_on),
            theoretical_yield=Quantity.of(200, "unit"),
            actual_yield=Quantity.of(196, "unit"),
            checked_by=actors.mfg2,
        ),
        actors.mfg,
    ).created
    assert lot(made, dp).location_id == second
