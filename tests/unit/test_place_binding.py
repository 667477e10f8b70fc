"""Every person of a place-bound role acts only at their places, and a refusal says nothing of a kit
held elsewhere: the ledger's own rule, whatever the entry point."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from ledger.application import Ledger
from ledger.commands import (
    AcknowledgeRecall,
    Arm,
    Dispense,
    Package,
    ReceiveLot,
    ReportExcursion,
    ReportRecallKits,
    Ship,
)
from ledger.domain import Kit
from ledger.errors import KitNotUsable, NotBoundHere
from ledger.gs1 import with_check_digit
from ledger.values import Actor
from tests.builders import KIT_GTIN, Program, actors, q, today, writes_nothing


def bound(actor: Actor, *places: object) -> Actor:
    return replace(actor, places=frozenset(places))  # type: ignore[arg-type]


@pytest.fixture
def spread(ledger: Ledger) -> Program:
    """Kits K00001-K00003 received at the DE site, K00004 at the FR site; the rest at the depot."""
    program = Program(ledger).reference().materials().formulate().placebo().package()
    program.release_run(countries=("DE", "FR"))
    program.at_site(["K00001", "K00002", "K00003"])
    program.at_site(["K00004"], to=program.fr_site, shipment_number="S-FR", serial=9)
    return program


def test_a_depot_user_cannot_act_for_a_clinical_site(spread: Program) -> None:
    L, depot = spread.ledger, bound(actors.depot, spread.depot)
    recall = spread.open_recall("RC-1")
    with writes_nothing(L, NotBoundHere, "depot1 is not bound to this place and may not acknowledge"):
        L.handle(AcknowledgeRecall(recall_id=recall, place_id=spread.site), depot)
    with writes_nothing(L, NotBoundHere):
        L.handle(
            ReportRecallKits(
                recall_id=recall,
                place_id=spread.site,
                reports=[{"kit_id": spread.kit("K00002"), "outcome": "quarantined"}],
            ),
            depot,
        )
    excursion = ReportExcursion(
        location_id=spread.site,
        kit_ids=spread.kits("K00002"),
        min_celsius=Decimal(2),
        max_celsius=Decimal(30),
        duration_minutes=90,
    )
    with writes_nothing(L, NotBoundHere, "may not report an excursion there"):
        L.handle(excursion, depot)
    # at its own depot it acts as before
    L.handle(AcknowledgeRecall(recall_id=recall, place_id=spread.depot), depot)


def test_a_site_user_acts_only_at_their_sites(spread: Program) -> None:
    L, site = spread.ledger, bound(actors.site, spread.site)
    with writes_nothing(L, NotBoundHere):
        L.handle(Dispense(kit_id=spread.kit("K00004"), site_id=spread.fr_site, subject="SUBJ-9"), site)
    L.handle(Dispense(kit_id=spread.kit("K00001"), site_id=spread.site, subject="SUBJ-1"), site)
    assert str(L.get(Kit, spread.kit("K00001")).status) == "dispensed"


@pytest.mark.parametrize("number", ["K00004", "K00007"], ids=["at another site", "at the depot"])
def test_a_refusal_says_nothing_of_a_kit_held_elsewhere(spread: Program, number: str) -> None:
    L, site = spread.ledger, bound(actors.site, spread.site)
    with writes_nothing(L, KitNotUsable) as info:
        L.handle(Dispense(kit_id=spread.kit(number), site_id=spread.site, subject="SUBJ-9"), site)
    assert info.value.message == f"kit {number}: is not held at this place; cannot dispense"
    assert set(info.value.details) == {"kit_number", "reason", "kit_id"}  # no status, no place


def test_a_manufacturing_user_works_only_at_their_plant(spread: Program) -> None:
    L = spread.ledger
    at_plant = bound(actors.mfg, spread.plant)
    lot = ReceiveLot(
        gtin=with_check_digit("0400000000990"),
        lot_number="EXC-9",
        kind="excipient",
        material="lactose",
        quantity=q("1 kg"),
        location_id=spread.depot,
        manufactured_on=today(),
        expires_on=today().replace(year=today().year + 1),
        supplier="ExCo",
    )
    with writes_nothing(L, NotBoundHere, "may not receive a lot there"):
        L.handle(lot, at_plant)
    L.handle(lot.model_copy(update={"location_id": spread.plant}), at_plant)
    # the second person who checks packaging at the depot must work there too
    package = Package(
        batch_number="P-9",
        trial_id=spread.trial,
        location_id=spread.depot,
        kit_gtin=KIT_GTIN,
        label_version="v1",
        arms=[Arm("A", spread.dp, 10, 10)],
        kit_list=[("K09001", "A")],
        checked_by=bound(actors.mfg2, spread.plant),
    )
    with writes_nothing(L, NotBoundHere, "mfg2 is not bound to this place and may not check packaging"):
        L.handle(package, bound(actors.mfg, spread.plant, spread.depot))


def test_global_roles_and_trusted_callers_are_not_bound(spread: Program) -> None:
    """QA acts everywhere; an actor the entry point built without places (the demo) is not checked."""
    assert actors.depot.places is None
    shipped = spread.ledger.handle(
        Ship(
            shipment_number="S-7",
            sscc=with_check_digit("34000000000000077"),
            from_id=spread.depot,
            to_id=spread.site,
            kit_ids=spread.kits("K00008"),
            min_celsius=Decimal(2),
            max_celsius=Decimal(8),
        ),
        actors.depot,
    )
    assert shipped.events
