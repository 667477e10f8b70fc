"""Genealogy read model on the hand-built scenario of tests/projection_builders.py (known answers)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from uuid import uuid4

import pytest

from ledger.commands import HoldLot
from ledger.errors import KitNotFound, LotNotFound
from tests.projection_builders import QA, World, scenario_world


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    with scenario_world(database_url) as w:
        yield w


def numbers(lots) -> list[str]:
    return [lot.lot_number for lot in lots]


def consumed(step) -> list[tuple[str, Decimal, str]]:
    return [(c.lot.lot_number, c.amount, c.unit) for c in step.inputs]


def places(summary) -> dict[str, tuple[int, dict[str, int]]]:
    return {p.place.name: (p.total, p.by_status) for p in summary.places}


def test_blinded_backward_trace_of_an_active_kit_reaches_both_api_lots_and_every_arm(world: World):
    trace = world.runner.genealogy.backward_from_kit(world.s.kit("K1001"))

    # The kit as it is now: dispensed at Site 101, nothing that names its arm.
    assert trace.kit.kit_number == "K1001" and trace.kit.batch_number == "P-1"
    assert (trace.kit.status, trace.kit.place.name, trace.kit.subject) == (
        "dispensed",
        "Site 101",
        "SUBJ-001",
    )
    assert trace.kit.treatment is None and trace.kit.dp_lot_id is None
    assert trace.blinded
    # Packaging P-1 consumed both arms' drug product and the cartons: the blinded view lists all.
    packaging, formulation = trace.steps
    assert (packaging.kind, packaging.batch_number, packaging.depth) == ("packaging", "P-1", 1)
    assert consumed(packaging) == [
        ("DP-AB", Decimal("120"), "unit"),
        ("PLC-1", Decimal("120"), "unit"),
        ("CTN-1", Decimal("24"), "unit"),
    ]
    # B-AB made DP-AB from two API lots (weighed in g, booked in each lot's kg) and the excipient.
    assert (formulation.kind, formulation.batch_number, formulation.depth) == ("formulation", "B-AB", 2)
    assert formulation.output_lot.lot_number == "DP-AB"
    assert consumed(formulation) == [
        ("API-A", Decimal("0.3"), "kg"),
        ("API-B", Decimal("0.2"), "kg"),
        ("EXC-1", Decimal("1"), "kg"),
    ]
    assert numbers(trace.input_lots) == ["API-A", "API-B", "DP-AB", "PLC-1", "EXC-1", "CTN-1"]
    assert trace.as_of == world.runner.head()


def test_unblinded_backward_trace_follows_the_kits_own_arm(world: World):
    genealogy = world.runner.genealogy
    active = genealogy.backward_from_kit(world.s.kit("K1001"), unblinded=True)
    placebo = genealogy.backward_from_kit(world.s.kit("K1002"), unblinded=True)

    assert not active.blinded
    assert (active.kit.treatment, active.kit.dp_lot_id) == ("A", world.s.lots["DP-AB"])
    assert consumed(active.steps[0]) == [("DP-AB", Decimal("120"), "unit"), ("CTN-1", Decimal("24"), "unit")]
    assert [s.batch_number for s in active.steps] == ["P-1", "B-AB"]
    assert numbers(active.input_lots) == ["API-A", "API-B", "DP-AB", "EXC-1", "CTN-1"]
    # The placebo kit came from a bought-in lot: no formulation behind it.
    assert (placebo.kit.treatment, placebo.kit.status) == ("P", "destroyed")
    assert consumed(placebo.steps[0]) == [("PLC-1", Decimal("120"), "unit"), ("CTN-1", Decimal("24"), "unit")]
    assert [s.batch_number for s in placebo.steps] == ["P-1"]


def test_backward_trace_of_a_lot(world: World):
    genealogy = world.runner.genealogy
    dp = genealogy.backward_from_lot(world.s.lots["DP-C2"])
    received = genealogy.backward_from_lot(world.s.lots["API-C"])

    assert dp.lot.lot_number == "DP-C2" and dp.kit is None
    (step,) = dp.steps
    assert (step.batch_number, step.output_lot.lot_number) == ("B-C2", "DP-C2")
    assert consumed(step) == [("API-C", Decimal("0.4"), "kg"), ("EXC-1", Decimal("0.5"), "kg")]
    assert numbers(dp.input_lots) == ["API-C", "EXC-1"]
    assert received.steps == () and received.input_lots == ()


def test_blinded_forward_summary_of_an_api_lot_counts_every_kit_of_the_runs_it_reached(world: World):
    summary = world.runner.genealogy.forward_summary(world.s.lots["API-B"])

    assert summary.lot.lot_number == "API-B" and summary.lot.status == "recalled"
    assert numbers(summary.dp_lots) == ["DP-AB"]
    assert [r.batch_number for r in summary.runs] == ["P-1"]
    assert summary.runs[0].kit_count == 24
    assert summary.blinded and summary.total_kits == 24
    assert places(summary) == {
        "Site 101": (8, {"damaged": 1, "destroyed": 1, "dispensed": 1, "missing": 1, "received": 4}),
        "Site 102": (4, {"in_transit": 4}),
        "Site 201": (2, {"quarantined": 1, "received": 1}),
        "Depot": (10, {"available": 10}),
    }
    site_101 = summary.places[0]
    assert site_101.by_class == {"at_site": 5, "destroyed": 1, "dispensed": 1, "missing": 1}


def test_unblinded_forward_summary_counts_only_the_kits_of_the_affected_arm(world: World):
    summary = world.runner.genealogy.forward_summary(world.s.lots["API-B"], unblinded=True)

    assert not summary.blinded and summary.total_kits == 12
    assert places(summary) == {
        "Site 101": (4, {"damaged": 1, "dispensed": 1, "received": 2}),
        "Site 102": (2, {"in_transit": 2}),
        "Site 201": (1, {"quarantined": 1}),
        "Depot": (5, {"available": 5}),
    }


def test_an_api_lot_split_across_four_batches_traces_forward_to_all_of_them(world: World):
    genealogy = world.runner.genealogy
    trace = genealogy.forward_from_lot(world.s.lots["API-C"])

    assert [(b.batch_number, b.output_lot.lot_number, b.amount, b.unit) for b in trace.batches] == [
        (f"B-C{i}", f"DP-C{i}", Decimal("0.4"), "kg") for i in range(1, 5)
    ]
    assert numbers(trace.dp_lots) == ["DP-C1", "DP-C2", "DP-C3", "DP-C4"]
    assert [r.batch_number for r in trace.runs] == ["P-2", "P-3", "P-4", "P-5"]
    assert len(trace.kits) == 16
    assert places(trace) == {"Site 101": (4, {"received": 4}), "Depot": (12, {"available": 12})}
    assert [(s.shipment_number, s.kits, s.status) for s in trace.shipments] == [("SH-4", 4, "received")]
    assert trace.subjects == ()
    assert all(k.treatment is None for k in trace.kits)
    unblinded = genealogy.forward_summary(world.s.lots["API-C"], unblinded=True)
    assert places(unblinded) == {"Site 101": (2, {"received": 2}), "Depot": (6, {"available": 6})}


def test_forward_trace_reaches_shipments_sites_and_subjects(world: World):
    trace = world.runner.genealogy.forward_from_lot(world.s.lots["API-B"])

    assert [b.batch_number for b in trace.batches] == ["B-AB"]
    assert [(s.shipment_number, s.to.name, s.kits, s.status) for s in trace.shipments] == [
        ("SH-1", "Site 101", 8, "received"),
        ("SH-2", "Site 102", 4, "in_transit"),
        ("SH-3", "Site 201", 2, "received"),
    ]
    assert [(s.subject, s.site.name, s.kit_number) for s in trace.subjects] == [
        ("SUBJ-001", "Site 101", "K1001"),
        ("SUBJ-002", "Site 101", "K1002"),
    ]
    by_number = {k.kit_number: k for k in trace.kits}
    assert len(by_number) == 24
    assert (by_number["K1008"].status, by_number["K1008"].location_id) == ("missing", None)
    assert by_number["K1008"].place.name == "Site 101"
    assert (by_number["K1011"].status_class, by_number["K1011"].place.name) == ("in_transit", "Site 102")
    unblinded = world.runner.genealogy.forward_from_lot(world.s.lots["API-B"], unblinded=True)
    assert {k.treatment for k in unblinded.kits} == {"A"}
    assert [s.subject for s in unblinded.subjects] == ["SUBJ-001"]


def test_a_packaging_component_reaches_every_kit_of_its_run_even_unblinded(world: World):
    genealogy = world.runner.genealogy
    for unblinded in (False, True):
        summary = genealogy.forward_summary(world.s.lots["CTN-1"], unblinded=unblinded)
        assert [r.batch_number for r in summary.runs] == ["P-1"]
        assert summary.dp_lots == () and summary.total_kits == 24
    # The excipient went into every batch, so into both arms of P-1 and the active arm of P-2..P-5.
    assert genealogy.forward_summary(world.s.lots["EXC-1"]).total_kits == 40
    assert genealogy.forward_summary(world.s.lots["EXC-1"], unblinded=True).total_kits == 20
    assert genealogy.forward_summary(world.s.lots["PLC-1"], unblinded=True).total_kits == 20


def test_unknown_ids_raise_not_found(world: World):
    genealogy = world.runner.genealogy
    with pytest.raises(KitNotFound):
        genealogy.backward_from_kit(uuid4())
    with pytest.raises(LotNotFound):
        genealogy.forward_summary(uuid4())
    with pytest.raises(LotNotFound):
        genealogy.backward_from_lot(uuid4())


def test_a_backward_trace_shows_each_lot_as_it_stands_now(world: World):
    """What lies upstream of a run is read once per process; the lots' own rows are read every time."""
    genealogy = world.runner.genealogy
    before = genealogy.backward_from_kit(world.s.kit("K1001"))
    assert {lot.lot_number: lot.status for lot in before.input_lots}["API-A"] == "released"

    world.ledger.handle(
        HoldLot(lot_id=world.s.lots["API-A"], reason="supplier notice: possible contamination"), QA
    )
    world.runner.catch_up()

    after = genealogy.backward_from_kit(world.s.kit("K1001"))
    assert {lot.lot_number: lot.status for lot in after.input_lots}["API-A"] == "on_hold"
    (held,) = [c.lot for c in after.steps[1].inputs if c.lot.lot_number == "API-A"]
    assert held.status == "on_hold"
    assert [s.batch_number for s in after.steps] == [s.batch_number for s in before.steps]
    assert after.as_of > before.as_of
    of_lot = genealogy.backward_from_lot(world.s.lots["DP-AB"])
    assert {lot.lot_number: lot.status for lot in of_lot.input_lots}["API-A"] == "on_hold"
