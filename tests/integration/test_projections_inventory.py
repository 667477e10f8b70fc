"""Inventory on the hand-built scenario: lot stock after formulation, packaging and a correction."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest

from ledger.errors import InvalidInput
from tests.projection_builders import World, scenario_world


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    with scenario_world(database_url) as w:
        yield w


def test_remaining_quantity_per_lot_and_location(world: World):
    stock = world.runner.inventory.stock()

    assert {s.lot.lot_number: (s.received, s.remaining, s.unit) for s in stock.lots} == {
        # Received 2 kg, corrected to 2.5 kg; B-AB took 300 g.
        "API-A": (Decimal("2.5"), Decimal("2.2"), "kg"),
        "API-B": (Decimal("1"), Decimal("0.8"), "kg"),
        # Four batches of 400 g each.
        "API-C": (Decimal("5"), Decimal("3.4"), "kg"),
        "EXC-1": (Decimal("50"), Decimal("47"), "kg"),
        "CTN-1": (Decimal("1000"), Decimal("976"), "unit"),
        # 120 units for P-1, 20 for each of P-2..P-5.
        "PLC-1": (Decimal("2000"), Decimal("1800"), "unit"),
        "DP-AB": (Decimal("1000"), Decimal("880"), "unit"),
        **{f"DP-C{i}": (Decimal("200"), Decimal("180"), "unit") for i in range(1, 5)},
    }
    # What is packaged was transferred from the plant to the depot that packages it.
    where = {s.lot.lot_number: s.location.name for s in stock.lots}
    moved = {"CTN-1", "PLC-1", "DP-AB", "DP-C1", "DP-C2", "DP-C3", "DP-C4"}
    assert where == {n: "Depot" if n in moved else "Plant" for n in where}
    assert all(s.in_transit_to is None for s in stock.lots)
    assert stock.as_of == world.runner.head()
    api_only = world.runner.inventory.stock(kind="api", location_id=world.s.places["Plant"])
    assert [s.lot.lot_number for s in api_only.lots] == ["API-A", "API-B", "API-C"]
    assert world.runner.inventory.stock(location_id=world.s.places["Depot"], kind="api").lots == ()


def test_kits_per_place_and_status(world: World):
    kits = world.runner.inventory.kits_by_place(trial_id=world.s.trial)

    assert kits.total == 40
    assert {p.place.name: (p.total, p.by_status) for p in kits.places} == {
        "Site 101": (12, {"damaged": 1, "destroyed": 1, "dispensed": 1, "missing": 1, "received": 8}),
        "Site 102": (4, {"in_transit": 4}),
        "Site 201": (2, {"quarantined": 1, "received": 1}),
        "Depot": (22, {"available": 22}),
    }


def test_kits_expiring_within_n_days(world: World):
    inventory, today = world.runner.inventory, world.s.today

    # P-2 kits carry DP-C1's expiry (today + 200 days): only they expire within 250 days.
    soon = inventory.expiring_kits(250, today=today)
    assert soon.until == today + timedelta(days=250)
    assert [(k.kit_number, k.days_left, k.status, k.place.name) for k in soon.kits] == [
        (f"K200{i}", 200, "received", "Site 101") for i in range(1, 5)
    ]
    # P-3..P-5 (DP-C2..C4, 300 days) join them; P-1 (DP-AB, 400 days) only counts kits still in supply.
    assert len(inventory.expiring_kits(350, today=today).kits) == 16
    later = inventory.expiring_kits(450, today=today).kits
    assert len(later) == 36
    assert not {"K1001", "K1002", "K1007", "K1008"} & {k.kit_number for k in later}
    assert inventory.expiring_kits(199, today=today).kits == ()
    with pytest.raises(InvalidInput):
        inventory.expiring_kits(-1)
