"""Chain of custody on the hand-built scenario: a kit's hand-overs and a shipment's."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import uuid4

import pytest

from ledger.errors import KitNotFound, ShipmentNotFound
from tests.projection_builders import World, scenario_world


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    with scenario_world(database_url) as w:
        yield w


def names(place) -> str | None:
    return place.name if place is not None else None


def test_every_hand_over_of_a_kit_in_order_with_who_and_when(world: World):
    chain = world.runner.custody.of_kit(world.s.kit("K1002"))

    assert chain.holder_kind == "kit"
    assert [(h.action, names(h.from_place), names(h.to_place), h.principal) for h in chain.steps] == [
        ("commissioned", None, "Depot", "mfg1"),
        ("shipped", "Depot", "Site 101", "depot1"),
        ("received", None, "Site 101", "site1"),
        ("dispensed", "Site 101", None, "site1"),
        ("returned", None, "Site 101", "site1"),
        ("destroyed", "Site 101", None, "site1"),
    ]
    shipped, received, dispensed, returned, destroyed = chain.steps[1:]
    assert shipped.shipment_id == received.shipment_id == world.s.shipments["SH-1"]
    assert received.detail == {"outcome": "received", "quarantine": False}
    assert dispensed.subject == "SUBJ-002" and returned.detail == {"condition": "unused"}
    assert destroyed.detail == {"certificate": "DC-1", "method": "incineration"}
    times = [h.occurred_at for h in chain.steps]
    assert times == sorted(times) and all(t.tzinfo is not None for t in times)
    assert [h.position for h in chain.steps] == sorted(h.position for h in chain.steps)
    assert chain.as_of == world.runner.head()


def test_a_shipments_dispatch_and_receipt(world: World):
    chain = world.runner.custody.of_shipment(world.s.shipments["SH-1"])

    shipped, received = chain.steps
    assert (shipped.action, names(shipped.from_place), names(shipped.to_place)) == (
        "shipped",
        "Depot",
        "Site 101",
    )
    assert shipped.detail["kits"] == 8 and shipped.detail["carrier"] == "ColdChain"
    assert (received.action, received.principal, received.name) == ("receipt_confirmed", "site1", "Sam Site")
    assert received.detail["outcomes"] == {"damaged": 1, "missing": 1, "received": 6}
    assert received.detail["excursion"] is False
    excursion = world.runner.custody.of_shipment(world.s.shipments["SH-3"]).steps[1]
    assert excursion.detail["excursion"] is True and excursion.detail["logger_max"] == "12"


def test_custody_of_unknown_ids_is_not_found(world: World):
    with pytest.raises(KitNotFound):
        world.runner.custody.of_kit(uuid4())
    with pytest.raises(ShipmentNotFound):
        world.runner.custody.of_shipment(world.s.kit("K1001"))
