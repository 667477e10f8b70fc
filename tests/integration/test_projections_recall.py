"""Recall impact on the hand-built scenario: API-B is recalled after its kits reached three sites."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import uuid4

import pytest

from ledger.errors import InvalidInput, LotNotFound
from tests.projection_builders import World, scenario_world


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    with scenario_world(database_url) as w:
        yield w


def test_blinded_impact_of_a_recalled_api_lot(world: World):
    impact = world.runner.recall.impact([world.s.lots["API-B"]])

    assert impact.blinded
    assert [lot.lot_number for lot in impact.lots] == ["API-B"]
    assert [lot.lot_number for lot in impact.dp_lots] == ["DP-AB"]
    assert [r.batch_number for r in impact.runs] == ["P-1"]
    # Every kit of P-1, whatever its arm, by status class.
    assert impact.total_kits == 24
    assert impact.by_class == {
        "at_depot": 10,
        "at_site": 7,
        "destroyed": 1,
        "dispensed": 1,
        "in_transit": 4,
        "missing": 1,
    }
    assert {p.place.name: p.by_class for p in impact.places} == {
        "Site 101": {"at_site": 5, "destroyed": 1, "dispensed": 1, "missing": 1},
        "Site 102": {"in_transit": 4},
        "Site 201": {"at_site": 2},
        "Depot": {"at_depot": 10},
    }
    # SH-2 is still on the road: stop it.
    assert [(s.shipment_number, s.to.name, s.kits) for s in impact.open_shipments] == [
        ("SH-2", "Site 102", 4)
    ]
    # Sites to notify: every clinical site with an affected kit not yet destroyed.
    assert [(n.site.name, n.kits, n.by_class) for n in impact.sites_to_notify] == [
        ("Site 101", 7, {"at_site": 5, "dispensed": 1, "missing": 1}),
        ("Site 102", 4, {"in_transit": 4}),
        ("Site 201", 2, {"at_site": 2}),
    ]
    assert impact.as_of == world.runner.head()


def test_unblinded_impact_of_several_lots_counts_only_affected_arms(world: World):
    impact = world.runner.recall.impact([world.s.lots["API-B"], world.s.lots["DP-C2"]], unblinded=True)

    assert not impact.blinded
    assert [lot.lot_number for lot in impact.lots] == ["API-B", "DP-C2"]
    assert [lot.lot_number for lot in impact.dp_lots] == ["DP-AB", "DP-C2"]
    assert [r.batch_number for r in impact.runs] == ["P-1", "P-3"]
    # 12 active kits of P-1 and the 2 active kits of P-3 (at the depot).
    assert impact.total_kits == 14
    assert impact.by_class == {"at_depot": 7, "at_site": 4, "dispensed": 1, "in_transit": 2}
    assert [(s.shipment_number, s.kits) for s in impact.open_shipments] == [("SH-2", 2)]
    assert [(n.site.name, n.kits) for n in impact.sites_to_notify] == [
        ("Site 101", 4),
        ("Site 102", 2),
        ("Site 201", 1),
    ]


def test_recall_notices_name_the_lot_the_reason_and_who(world: World):
    (notice,) = world.runner.recall.notices().notices

    assert notice.lot.lot_number == "API-B" and notice.lot.status == "recalled"
    assert notice.reason == "supplier notified an impurity above specification"
    assert (notice.principal, notice.name) == ("qa1", "Quinn QA")


def test_impact_needs_known_lots(world: World):
    with pytest.raises(LotNotFound):
        world.runner.recall.impact([world.s.lots["API-B"], uuid4()])
    with pytest.raises(InvalidInput):
        world.runner.recall.impact([])
