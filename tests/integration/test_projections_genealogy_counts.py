"""The forward answers that count and page in SQL give exactly what the kit-by-kit trace gives."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from projections.genealogy import kit, run_shipment, shipment_kit
from tests.projection_builders import World, scenario_world


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    with scenario_world(database_url) as w:
        yield w


@pytest.mark.parametrize("unblinded", [False, True])
def test_forward_counts_equal_the_trace_that_loads_every_kit(world: World, unblinded: bool) -> None:
    genealogy = world.runner.genealogy
    reaching = 0
    for name, lot_id in world.s.lots.items():
        trace = genealogy.forward_from_lot(lot_id, unblinded=unblinded)
        counts = genealogy.forward_counts(lot_id, unblinded=unblinded)
        assert counts.total_kits == len(trace.kits), name
        assert counts.subjects == len(trace.subjects), name
        assert (counts.lot, counts.batches, counts.dp_lots, counts.runs) == (
            trace.lot, trace.batches, trace.dp_lots, trace.runs), name
        assert (counts.shipments, counts.places, counts.blinded) == (
            trace.shipments, trace.places, trace.blinded), name
        reaching += bool(trace.kits)
    assert reaching >= 3  # the scenario has lots that reach kits, so the comparison means something


@pytest.mark.parametrize("unblinded", [False, True])
def test_forward_kit_pages_are_slices_of_the_full_kit_list(world: World, unblinded: bool) -> None:
    genealogy = world.runner.genealogy
    for name, lot_id in world.s.lots.items():
        kits = genealogy.forward_from_lot(lot_id, unblinded=unblinded).kits
        for limit, offset in ((1000, 0), (3, 0), (3, 5), (7, len(kits) - 2), (5, len(kits) + 4)):
            page = genealogy.forward_kits([lot_id], unblinded=unblinded, limit=limit, offset=offset)
            assert page.total == len(kits), name
            assert page.items == kits[offset : offset + limit], (name, limit, offset)
            assert page.blinded is not unblinded


@pytest.mark.parametrize("unblinded", [False, True])
def test_kits_of_several_lots_are_the_union_of_each_lots_kits_by_kit_number(
    world: World, unblinded: bool
) -> None:
    genealogy = world.runner.genealogy
    lots = list(world.s.lots.values())
    union = {k.id: k for lot in lots for k in genealogy.forward_from_lot(lot, unblinded=unblinded).kits}
    expected = sorted(union.values(), key=lambda k: (k.kit_number, k.id))
    page = genealogy.forward_kits(lots, unblinded=unblinded, limit=1000, offset=0)
    assert page.total == len(expected) > 0
    assert page.items == tuple(expected)


def test_kits_per_run_and_shipment_equal_a_count_of_every_shipped_kit(world: World) -> None:
    with world.runner.engine.connect() as conn:
        kept = set(conn.execute(select(run_shipment)).tuples())
        counted = set(conn.execute(
            select(kit.c.run_id, shipment_kit.c.shipment_id, func.count())
            .join(kit, kit.c.kit_id == shipment_kit.c.kit_id)
            .group_by(kit.c.run_id, shipment_kit.c.shipment_id)
        ).tuples())
    assert kept == counted and kept
