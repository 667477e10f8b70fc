"""Kits move between depots as first-class shipments: shipped from where they are, received into the
other depot's stock (available to ship again), each kit checked as for any shipment."""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

import pytest

from ledger.commands import ConfirmReceipt, RegisterLocation, Ship
from ledger.domain import Kit, KitStatus, Shipment
from ledger.errors import InvalidInput, KitsNotUsable, NotAuthorised
from ledger.gs1 import with_check_digit
from tests.builders import Program, actors, sscc, writes_nothing

DEPOT2_GLN = with_check_digit("400000000009")


@pytest.fixture
def two_depots(program: Program) -> tuple[Program, UUID]:
    depot2 = program.ledger.handle(
        RegisterLocation(gln=DEPOT2_GLN, kind="depot", name="Depot East", country="DE"), actors.admin
    ).id
    return program, depot2


def transfer(program: Program, to: UUID, *numbers: str, number: str = "T-1", serial: int = 40) -> UUID:
    return program.ledger.handle(
        Ship(
            shipment_number=number,
            sscc=sscc(serial),
            from_id=program.depot,
            to_id=to,
            kit_ids=program.kits(*numbers),
            min_celsius=Decimal(2),
            max_celsius=Decimal(8),
        ),
        actors.depot,
    ).id


def kit(program: Program, number: str) -> Kit:
    return program.ledger.get(Kit, program.kit(number))


def test_kits_move_between_depots_and_ship_again_from_the_new_one(two_depots: tuple[Program, UUID]) -> None:
    program, depot2 = two_depots
    L = program.ledger
    shipment = transfer(program, depot2, "K00007", "K00008")
    moving = kit(program, "K00007")
    assert (moving.status, moving.location_id, moving.destination_id) == (KitStatus.IN_TRANSIT, None, depot2)
    with writes_nothing(L, KitsNotUsable, "is not held at this place"):
        program.ship(["K00007"], shipment_number="S-X", serial=41)
    receipt = ConfirmReceipt(
        shipment_id=shipment,
        site_id=depot2,
        outcomes={"K00007": "received", "K00008": "damaged"},
        logger_min=Decimal(3),
        logger_max=Decimal(7),
    )
    with writes_nothing(L, NotAuthorised, "confirm a receipt at a depot"):
        L.handle(receipt, actors.site)
    L.handle(receipt, actors.depot)
    assert L.get(Shipment, shipment).status == "received"
    arrived = kit(program, "K00007")
    assert (arrived.status, arrived.location_id) == (KitStatus.AVAILABLE, depot2)
    assert kit(program, "K00008").status == KitStatus.DAMAGED
    # stock again: it ships from the depot it is at now, to a site, released for the country
    onward = program.ledger.handle(
        Ship(
            shipment_number="S-ONWARD",
            sscc=sscc(42),
            from_id=depot2,
            to_id=program.site,
            kit_ids=program.kits("K00007"),
            min_celsius=Decimal(2),
            max_celsius=Decimal(8),
        ),
        actors.depot,
    )
    assert onward.events
    assert kit(program, "K00007").destination_id == program.site


def test_an_excursion_on_a_transfer_quarantines_the_stock(two_depots: tuple[Program, UUID]) -> None:
    program, depot2 = two_depots
    shipment = transfer(program, depot2, "K00009")
    program.ledger.handle(
        ConfirmReceipt(
            shipment_id=shipment, site_id=depot2, outcomes={"K00009": "received"}, logger_max=Decimal(15)
        ),
        actors.depot,
    )
    held = kit(program, "K00009")
    assert (held.status, held.held_status) == (KitStatus.QUARANTINED, KitStatus.AVAILABLE)
    assert held.location_id == depot2


def test_a_depot_neither_confirms_a_sites_receipt_nor_ships_to_itself(
    two_depots: tuple[Program, UUID],
) -> None:
    program, _ = two_depots
    shipment = program.ship(["K00001"])
    with writes_nothing(program.ledger, NotAuthorised, "confirm a receipt at a site"):
        program.ledger.handle(
            ConfirmReceipt(shipment_id=shipment, site_id=program.site, outcomes={"K00001": "received"}),
            actors.depot,
        )
    with writes_nothing(program.ledger, InvalidInput, "goes to another place"):
        transfer(program, program.depot, "K00002")
