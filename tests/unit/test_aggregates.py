"""Aggregates on their own, without a store: the events they emit, the rules they check, replay."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

import pytest

from ledger.domain import Kit, KitStatus, Location, Lot, LotStatus, PackagingRun, Shipment, Trial
from ledger.domain.base import stable_id, stamp
from ledger.domain.kit import ReceiptOutcome
from ledger.errors import (
    InsufficientQuantity,
    InvalidTransition,
    KitNotUsable,
    LotNotUsable,
    ReleaseIncomplete,
    UnitMismatch,
)
from ledger.values import Meaning, Quantity, sign
from tests.builders import API_GTIN, KIT_GTIN, actors, q

D0 = date(2026, 1, 1)


def event_names(aggregate: Any) -> list[str]:
    return [type(e).__qualname__ for e in aggregate.pending_events]


def replay(aggregate: Any) -> Any:
    """Rebuild the aggregate from the events it emitted, as the repository does on load."""
    rebuilt = None
    for e in aggregate.collect_events():
        rebuilt = e.mutate(rebuilt)
    return rebuilt


def new_lot(quantity: str = "2 kg", retest_on: date | None = None) -> Lot:
    return Lot(
        gtin=API_GTIN,
        lot_number="API-1",
        audit=stamp(actors.mfg),
        kind="api",
        material="x",
        quantity=q(quantity).as_dict(),
        location_id=uuid4(),
        manufactured_on=D0,
        expires_on=D0 + timedelta(days=700),
        retest_on=retest_on,
        supplier="ChemCo",
        supplier_lot=None,
        produced_by_batch_id=None,
    )


def released(lot: Lot) -> Lot:
    lot.release(stamp(actors.qa), sign(actors.qa, Meaning.RELEASED).as_dict(), "COA-1")
    return lot


# --- lots ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [("kit", "04069999000503", "K000001"), ("lot", "Zürich-Ω 1"), ("trial",)])
def test_an_aggregate_id_is_uuid5_of_its_business_key_in_lotlines_namespace(key: tuple[str, ...]) -> None:
    # Stored streams are named by these ids: a change here would orphan every stored aggregate.
    assert stable_id(*key) == uuid5(uuid5(NAMESPACE_URL, "https://lotline.dev/ids"), ":".join(key))
    assert stable_id(*key).version == 5


def test_a_received_lot_starts_in_quarantine_with_all_of_it_remaining() -> None:
    lot = new_lot()
    assert event_names(lot) == ["Lot.Received"]
    assert lot.status == LotStatus.QUARANTINE
    assert lot.remaining == lot.received == Quantity(Decimal(2), "kg")
    with pytest.raises(LotNotUsable, match="status is quarantine"):
        lot.require_usable(D0)


def test_consumption_is_recorded_in_the_lots_own_unit_and_replays_to_the_same_stock() -> None:
    lot = released(new_lot())
    taken = lot.consume(stamp(actors.mfg), q("500 g"), uuid4(), "formulation")
    assert taken == Quantity(Decimal("0.5"), "kg")
    assert event_names(lot) == ["Lot.Received", "Lot.Released", "Lot.Consumed"]
    assert lot.pending_events[-1].quantity == {"amount": "0.5", "unit": "kg"}  # type: ignore[attr-defined]
    rebuilt = replay(lot)
    assert rebuilt.remaining == Quantity(Decimal("1.5"), "kg")
    assert rebuilt.status == LotStatus.RELEASED
    assert rebuilt.version == 3


def test_consumption_beyond_the_remainder_emits_nothing() -> None:
    lot = released(new_lot())
    lot.collect_events()
    with pytest.raises(InsufficientQuantity):
        lot.consume(stamp(actors.mfg), q("2000.5 g"), uuid4(), "formulation")
    with pytest.raises(UnitMismatch):
        lot.consume(stamp(actors.mfg), q("3 unit"), uuid4(), "formulation")
    assert lot.pending_events == []
    assert lot.remaining == Quantity(Decimal(2), "kg")


def test_a_lot_is_unusable_after_its_retest_date_even_before_expiry() -> None:
    lot = released(new_lot(retest_on=D0 + timedelta(days=365)))
    assert lot.use_by() == D0 + timedelta(days=365)
    lot.require_usable(D0 + timedelta(days=365))
    with pytest.raises(LotNotUsable, match="due for retest"):
        lot.require_usable(D0 + timedelta(days=366))


def test_a_recalled_lot_cannot_be_released_again() -> None:
    lot = released(new_lot())
    lot.recall(stamp(actors.qa, reason="recall"), sign(actors.qa, Meaning.APPROVED).as_dict())
    with pytest.raises(InvalidTransition, match="is recalled; cannot release"):
        lot.release(stamp(actors.qa), sign(actors.qa, Meaning.RELEASED).as_dict(), "COA-2")


# --- kits ----------------------------------------------------------------------------------------------


def new_kit() -> tuple[Kit, UUID]:
    depot = uuid4()
    kit = Kit(
        gtin=KIT_GTIN,
        kit_number="K00001",
        audit=stamp(actors.mfg),
        trial_id=uuid4(),
        packaging_run_id=uuid4(),
        batch_number="P-1",
        label_version="v1",
        expires_on=D0 + timedelta(days=400),
        location_id=depot,
    )
    return kit, depot


def test_commissioning_a_kit_records_what_constructing_it_records() -> None:
    fields: dict[str, Any] = {
        "gtin": "04069999000503", "kit_number": "K000001", "audit": stamp(actors.mfg), "trial_id": uuid4(),
        "packaging_run_id": uuid4(), "batch_number": "PK-1", "label_version": "v1",
        "expires_on": date(2030, 1, 31), "location_id": uuid4(),
    }
    made, commissioned = Kit(**fields), Kit.commission(**fields)
    assert commissioned.id == made.id == Kit.create_id(fields["gtin"], fields["kit_number"])
    (a,), (b,) = made.collect_events(), commissioned.collect_events()
    assert type(a) is type(b) is Kit.Commissioned
    assert {**vars(a), "timestamp": None} == {**vars(b), "timestamp": None}
    assert {**vars(made), "_created_on": None, "_modified_on": None} == {
        **vars(commissioned), "_created_on": None, "_modified_on": None}


def test_shipping_and_receiving_a_kit_record_what_their_decorated_methods_record() -> None:
    # Kit.ship and Kit.receive trigger the events of `_shipped` and `_received` themselves.
    fields: dict[str, Any] = {
        "gtin": "04069999000503", "kit_number": "K000001", "audit": stamp(actors.mfg), "trial_id": uuid4(),
        "packaging_run_id": uuid4(), "batch_number": "PK-1", "label_version": "v1",
        "expires_on": date(2030, 1, 31), "location_id": uuid4(),
    }
    depot, site, shipment = fields["location_id"], uuid4(), uuid4()
    audit = stamp(actors.depot)
    fast, decorated = Kit(**fields), Kit(**fields)
    fast.ship(audit, shipment, depot, site)
    decorated._shipped(audit, shipment, depot, site)
    fast.receive(audit, shipment, site, ReceiptOutcome.DAMAGED, quarantine=True)
    decorated._received(audit, shipment, site, "damaged", True, False)
    ours, theirs = fast.collect_events(), decorated.collect_events()
    assert [type(e) for e in ours] == [type(e) for e in theirs]
    assert [type(e) for e in ours] == [Kit.Commissioned, Kit.Shipped, Kit.Received]
    assert [{**vars(e), "timestamp": None} for e in ours] == [{**vars(e), "timestamp": None} for e in theirs]
    assert {**vars(fast), "_created_on": None, "_modified_on": None} == {
        **vars(decorated), "_created_on": None, "_modified_on": None}


def test_a_kit_is_received_only_at_the_site_it_was_shipped_to() -> None:
    kit, depot = new_kit()
    shipment, site, other_site = uuid4(), uuid4(), uuid4()
    kit.ship(stamp(actors.depot), shipment, depot, site)
    with pytest.raises(KitNotUsable, match="not shipped to this place"):
        kit.receive(stamp(actors.site), shipment, other_site, ReceiptOutcome.RECEIVED, False)
    with pytest.raises(KitNotUsable, match="not shipped to this place"):
        kit.receive(stamp(actors.site), uuid4(), site, ReceiptOutcome.RECEIVED, False)
    kit.receive(stamp(actors.site), shipment, site, ReceiptOutcome.RECEIVED, False)
    assert (kit.status, kit.location_id) == (KitStatus.RECEIVED, site)


def test_a_kit_ships_only_from_where_it_is() -> None:
    kit, _depot = new_kit()
    with pytest.raises(KitNotUsable, match="is not held at this place"):
        kit.ship(stamp(actors.depot), uuid4(), uuid4(), uuid4())


def test_quarantine_release_returns_a_kit_to_the_status_it_had() -> None:
    kit, depot = new_kit()
    kit.quarantine(stamp(actors.depot), {"max_celsius": "30"})
    assert kit.status == KitStatus.QUARANTINED
    with pytest.raises(KitNotUsable):
        kit.ship(stamp(actors.depot), uuid4(), depot, uuid4())
    kit.decide_quarantine(stamp(actors.qa), sign(actors.qa, Meaning.RELEASED).as_dict(), release=True)
    assert kit.status == KitStatus.AVAILABLE
    assert replay(kit).status == KitStatus.AVAILABLE
    assert event_names(kit) == []  # replay() collected them


def test_a_kit_in_transit_cannot_be_authorised_for_destruction() -> None:
    kit, depot = new_kit()
    kit.ship(stamp(actors.depot), uuid4(), depot, uuid4())
    with pytest.raises(KitNotUsable, match="in_transit; cannot authorise its destruction"):
        kit.authorise_destruction(stamp(actors.qa), sign(actors.qa, Meaning.AUTHORISED_DESTRUCTION).as_dict())


# --- shipments, trials, locations, packaging runs -------------------------------------------------------


def new_shipment() -> Shipment:
    return Shipment(
        shipment_number="S-1",
        audit=stamp(actors.depot),
        sscc="340000000000000019",
        from_id=uuid4(),
        to_id=uuid4(),
        kit_ids=[uuid4()],
        kit_numbers=["K00001"],
        min_celsius=Decimal(2),
        max_celsius=Decimal(8),
        logger_id=None,
        carrier=None,
    )


@pytest.mark.parametrize(
    ("low", "high", "excursion"),
    [("2", "8", False), ("2.0", "8.00", False), ("1.9", "5", True), ("3", "8.1", True), (None, None, False)],
)
def test_an_excursion_is_a_logger_reading_outside_the_shipping_range(
    low: str | None, high: str | None, excursion: bool
) -> None:
    shipment = new_shipment()
    assert shipment.is_excursion(low and Decimal(low), high and Decimal(high)) is excursion


def test_expiry_windows_count_back_from_the_kit_expiry() -> None:
    trial = Trial(
        code="LTL-101",
        audit=stamp(actors.admin),
        title="t",
        sponsor="s",
        countries=["DE"],
        do_not_ship_days=30,
        do_not_dispense_days=7,
    )
    assert trial.last_ship_date(date(2027, 6, 1)) == date(2027, 5, 2)
    assert trial.last_dispense_date(date(2027, 6, 1)) == date(2027, 5, 25)


def test_only_a_registered_clinical_site_can_be_activated() -> None:
    depot = Location(
        gln="4000000000020",
        audit=stamp(actors.admin),
        kind="depot",
        name="Depot",
        country="DE",
        trial_id=None,
        site_number=None,
        address="",
    )
    with pytest.raises(InvalidTransition):
        depot.activate(stamp(actors.admin))
    site = Location(
        gln="4000000000037",
        audit=stamp(actors.admin),
        kind="clinical_site",
        name="Site",
        country="DE",
        trial_id=uuid4(),
        site_number="101",
        address="",
    )
    site.activate(stamp(actors.admin))
    with pytest.raises(InvalidTransition, match="is activated; cannot activate"):
        site.activate(stamp(actors.admin))


def test_release_for_clinical_use_goes_qa_then_qp_then_sponsor_per_country() -> None:
    run = PackagingRun(
        batch_number="P-1",
        audit=stamp(actors.mfg),
        trial_id=uuid4(),
        location_id=uuid4(),
        kit_gtin=KIT_GTIN,
        label_version="v1",
        expires_on=D0,
        inputs=[],
        arms=[],
        samples=0,
        rejects=0,
        kit_numbers=["K00001"],
        allocation={"K00001": "A"},
        performed_by=actors.mfg.as_dict(),
        checked_by=actors.mfg2.as_dict(),
    )
    qa_sig = sign(actors.qa, Meaning.RELEASED).as_dict()
    qp_sig = sign(actors.qp, Meaning.CERTIFIED).as_dict()
    sponsor_sig = sign(actors.qa, Meaning.SPONSOR_RELEASED).as_dict()
    with pytest.raises(ReleaseIncomplete, match="QA disposition is pending"):
        run.require_released_for("DE")
    with pytest.raises(InvalidTransition):
        run.certify(stamp(actors.qp), qp_sig)
    run.dispose(stamp(actors.qa), qa_sig, released=True)
    with pytest.raises(InvalidTransition, match="not QP certified"):
        run.release_for_country(stamp(actors.qa), sponsor_sig, "DE")
    with pytest.raises(ReleaseIncomplete, match="no QP certification"):
        run.require_released_for("DE")
    run.certify(stamp(actors.qp), qp_sig)
    with pytest.raises(InvalidTransition, match="already certified"):
        run.certify(stamp(actors.qp), qp_sig)
    run.release_for_country(stamp(actors.qa), sponsor_sig, "DE")
    run.require_released_for("DE")
    with pytest.raises(ReleaseIncomplete, match="no sponsor release for FR"):
        run.require_released_for("FR")
    with pytest.raises(InvalidTransition, match="already released for DE"):
        run.release_for_country(stamp(actors.qa), sponsor_sig, "DE")
    assert event_names(run) == [
        "PackagingRun.Packaged",
        "PackagingRun.Disposed",
        "PackagingRun.Certified",
        "PackagingRun.SponsorReleased",
    ]


def test_a_rejected_packaged_batch_can_never_be_certified() -> None:
    run = PackagingRun(
        batch_number="P-1",
        audit=stamp(actors.mfg),
        trial_id=uuid4(),
        location_id=uuid4(),
        kit_gtin=KIT_GTIN,
        label_version="v1",
        expires_on=D0,
        inputs=[],
        arms=[],
        samples=0,
        rejects=0,
        kit_numbers=[],
        allocation={},
        performed_by={},
        checked_by={},
    )
    run.dispose(stamp(actors.qa), sign(actors.qa, Meaning.REJECTED).as_dict(), released=False)
    with pytest.raises(InvalidTransition, match="QA rejected"):
        run.certify(stamp(actors.qp), sign(actors.qp, Meaning.CERTIFIED).as_dict())
    with pytest.raises(ReleaseIncomplete, match="QA disposition is rejected"):
        run.require_released_for("DE")
