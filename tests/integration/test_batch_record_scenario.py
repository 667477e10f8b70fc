"""One program from API receipt to destruction, recorded step by step, then replayed from the store.

Reads like a batch record: every step says what happened; at the end a second ledger on the same
database reloads every aggregate and checks every quantity and status, and the chain verifies.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from uuid import UUID

from ledger.application import Ledger
from ledger.commands import (
    ActivateSite,
    Arm,
    AuthoriseDestruction,
    CertifyPackaging,
    ConfirmReceipt,
    DestroyKits,
    Dispense,
    DisposePackaging,
    Formulate,
    OutputLot,
    Package,
    ReceiveLot,
    RegisterLocation,
    RegisterTrial,
    ReleaseLot,
    ReturnKit,
    Ship,
    SponsorRelease,
)
from ledger.domain import (
    Kit,
    KitStatus,
    Location,
    Lot,
    LotStatus,
    ManufacturingBatch,
    PackagingRun,
    Shipment,
    ShipmentStatus,
    SiteStatus,
    Trial,
)
from ledger.values import Meaning, Quantity, sign
from ledger.verify import verify_chain
from tests.builders import (
    API_GTIN,
    DEPOT_GLN,
    DP_GTIN,
    EXCIPIENT_GTIN,
    KIT_GTIN,
    PLACEBO_GTIN,
    PLANT_GLN,
    SITE_GLN,
    actors,
    q,
    sscc,
    today,
    transfer_lot,
)

KITS = [f"K{i:05d}" for i in range(1, 9)]
ACTIVE, PLACEBO = KITS[:4], KITS[4:]


def kit_id(number: str) -> UUID:
    return Kit.create_id(KIT_GTIN, number)


def test_batch_record_from_api_receipt_to_destruction_replays_exactly(
    open_ledger: Callable[[], Ledger],
) -> None:
    ledger = open_ledger()
    events = 0  # what each step must have appended to the chain

    # Set-up: trial LTL-101 (DE), plant, depot and site 101, activated.
    trial = ledger.handle(
        RegisterTrial(
            code="LTL-101",
            title="Lotlinib vs placebo",
            sponsor="Acme",
            countries=["DE"],
            do_not_ship_days=30,
            do_not_dispense_days=7,
        ),
        actors.admin,
    ).id
    plant = ledger.handle(
        RegisterLocation(
            gln=PLANT_GLN,
            kind="manufacturing_site",
            name="Plant",
            country="DE",
        ),
        actors.admin,
    ).id
    depot = ledger.handle(
        RegisterLocation(gln=DEPOT_GLN, kind="depot", name="Depot", country="DE"), actors.admin
    ).id
    site = ledger.handle(
        RegisterLocation(
            gln=SITE_GLN,
            kind="clinical_site",
            name="Site 101",
            country="DE",
            trial_id=trial,
            site_number="101",
        ),
        actors.admin,
    ).id
    ledger.handle(ActivateSite(site_id=site), actors.admin)
    events += 5

    # 1. API lot API-1, 2 kg, received from ChemCo into quarantine; excipient EXC-1, 10 kg.
    api = ledger.handle(
        ReceiveLot(
            gtin=API_GTIN,
            lot_number="API-1",
            kind="api",
            material="lotlinib",
            quantity=q("2 kg"),
            location_id=plant,
            manufactured_on=today() - timedelta(90),
            expires_on=today() + timedelta(730),
            supplier="ChemCo",
            supplier_lot="C-77",
        ),
        actors.mfg,
    ).id
    excipient = ledger.handle(
        ReceiveLot(
            gtin=EXCIPIENT_GTIN,
            lot_number="EXC-1",
            kind="excipient",
            material="lactose",
            quantity=q("10 kg"),
            location_id=plant,
            manufactured_on=today() - timedelta(90),
            expires_on=today() + timedelta(1000),
            supplier="ExCo",
        ),
        actors.mfg,
    ).id
    assert ledger.get(Lot, api).status == LotStatus.QUARANTINE
    events += 2

    # 2. QA reviews the certificates of analysis and releases both lots (signed "released").
    ledger.handle(
        ReleaseLot(lot_id=api, signature=sign(actors.qa, Meaning.RELEASED), results_ref="COA-API-1"),
        actors.qa,
    )
    ledger.handle(
        ReleaseLot(
            lot_id=excipient,
            signature=sign(actors.qa, Meaning.RELEASED),
            results_ref="COA-EXC-1",
        ),
        actors.qa,
    )
    events += 2

    # 3. Formulation, batch B-1 on MIX-1: 500 g API + 2 kg lactose -> 980 of 1000 theoretical tablets,
    #    performed by mfg1, checked by mfg2. Records the batch, the DP lot and two consumptions.
    dp_expiry = today() + timedelta(365)
    batch, dp = ledger.handle(
        Formulate(
            batch_number="B-1",
            product="Lotlinib 10 mg",
            location_id=plant,
            inputs=[(api, q("500 g")), (excipient, q("2 kg"))],
            output=OutputLot(DP_GTIN, "DP-1", "Lotlinib 10 mg tablets", dp_expiry),
            theoretical_yield=q("1000 unit"),
            actual_yield=q("980 unit"),
            equipment=["MIX-1"],
            checked_by=actors.mfg2,
        ),
        actors.mfg,
    ).created
    events += 4

    # 4. QC tests the drug-product lot; QA releases DP-1. The placebo lot PLC-1 (1000 tablets) is
    #    bought in and released the same way.
    ledger.handle(
        ReleaseLot(lot_id=dp, signature=sign(actors.qa, Meaning.RELEASED), results_ref="QC-DP-1"), actors.qa
    )
    placebo = ledger.handle(
        ReceiveLot(
            gtin=PLACEBO_GTIN,
            lot_number="PLC-1",
            kind="drug_product",
            material="placebo tablets",
            quantity=q("1000 unit"),
            location_id=plant,
            manufactured_on=today() - timedelta(30),
            expires_on=today() + timedelta(500),
            supplier="PlaceboCo",
        ),
        actors.depot,
    ).id
    ledger.handle(
        ReleaseLot(lot_id=placebo, signature=sign(actors.qa, Meaning.RELEASED), results_ref="COA-PLC"),
        actors.qa,
    )
    events += 3

    # 5. Both lots are transferred from the plant to the depot that packages them (TR-1, TR-2): each
    #    sent by the plant and received by the depot.
    events += transfer_lot(ledger, dp, depot, number="TR-1")
    events += transfer_lot(ledger, placebo, depot, number="TR-2")

    # 6. Packaging run P-1 at the depot: 8 blinded kits of 10 tablets, K00001-K00004 active,
    #    K00005-K00008 placebo; 40 tablets issued from each lot, all of them in kits.
    run = ledger.handle(
        Package(
            batch_number="P-1",
            trial_id=trial,
            location_id=depot,
            kit_gtin=KIT_GTIN,
            label_version="v1",
            arms=[Arm("A", dp, 10, 40), Arm("P", placebo, 10, 40)],
            kit_list=[(n, "A") for n in ACTIVE] + [(n, "P") for n in PLACEBO],
            checked_by=actors.mfg2,
        ),
        actors.mfg,
    ).id
    events += 1 + 2 + len(KITS)

    # 7. Release for clinical use: QA disposition, QP certification, sponsor release for DE.
    ledger.handle(
        DisposePackaging(run_id=run, signature=sign(actors.qa, Meaning.RELEASED), released=True), actors.qa
    )
    ledger.handle(CertifyPackaging(run_id=run, signature=sign(actors.qp, Meaning.CERTIFIED)), actors.qp)
    ledger.handle(
        SponsorRelease(run_id=run, country="DE", signature=sign(actors.qa, Meaning.SPONSOR_RELEASED)),
        actors.qa,
    )
    events += 3

    # 8. The depot ships K00001-K00003 (active) and K00005-K00007 (placebo) at 2-8 °C in SSCC 1.
    shipped = ["K00001", "K00002", "K00003", "K00005", "K00006", "K00007"]
    shipment = ledger.handle(
        Ship(
            shipment_number="S-1",
            sscc=sscc(1),
            from_id=depot,
            to_id=site,
            kit_ids=[kit_id(n) for n in shipped],
            min_celsius=Decimal(2),
            max_celsius=Decimal(8),
            logger_id="LOG-1",
            carrier="ColdChain",
        ),
        actors.depot,
    ).id
    events += 1 + len(shipped)

    # 9. Site 101 receives it: logger 3.1-7.4 °C (no excursion); K00006 damaged, K00007 missing.
    outcomes = dict.fromkeys(shipped, "received") | {"K00006": "damaged", "K00007": "missing"}
    receipt = ledger.handle(
        ConfirmReceipt(
            shipment_id=shipment,
            site_id=site,
            outcomes=outcomes,
            logger_min=Decimal("3.1"),
            logger_max=Decimal("7.4"),
        ),
        actors.site,
    )
    assert receipt.facts == {"excursion": False}
    events += 1 + len(shipped)

    # 10. K00001 is dispensed to subject SUBJ-001 ...
    ledger.handle(Dispense(kit_id=kit_id("K00001"), site_id=site, subject="SUBJ-001"), actors.site)
    # 11. ... and returned, partially used, at the next visit.
    ledger.handle(ReturnKit(kit_id=kit_id("K00001"), site_id=site, condition="partially_used"), actors.site)
    events += 2

    # 12. QA authorises destruction of the returned kit and the damaged one (signed, with reason) ...
    doomed = [kit_id("K00001"), kit_id("K00006")]
    ledger.handle(
        AuthoriseDestruction(
            kit_ids=doomed,
            signature=sign(actors.qa, Meaning.AUTHORISED_DESTRUCTION),
            reason="returned and damaged kits, site 101",
        ),
        actors.qa,
    )
    # 13. ... and the site destroys them under certificate DC-101-1.
    ledger.handle(
        DestroyKits(location_id=site, kit_ids=doomed, certificate="DC-101-1", method="incineration"),
        actors.site,
    )
    events += 4

    # --- Replay: a second ledger on the same database rebuilds everything from the stored events. ---
    replayed = open_ledger()
    assert replayed is not ledger

    # Lots: remaining = received - consumed, exact decimals in the lot's own unit.
    expected_lots = {
        api: (Quantity(Decimal("2"), "kg"), Quantity(Decimal("0.5"), "kg")),
        excipient: (Quantity(Decimal("10"), "kg"), Quantity(Decimal("2"), "kg")),
        dp: (Quantity(Decimal("980"), "unit"), Quantity(Decimal("40"), "unit")),
        placebo: (Quantity(Decimal("1000"), "unit"), Quantity(Decimal("40"), "unit")),
    }
    for lot_id, (received, consumed) in expected_lots.items():
        lot = replayed.get(Lot, lot_id)
        assert lot.status == LotStatus.RELEASED
        assert lot.received == received
        assert lot.remaining == Quantity(received.amount - consumed.amount, received.unit)
        assert lot.remaining.unit == received.unit
    assert str(replayed.get(Lot, api).remaining) == "1.5 kg"
    assert str(replayed.get(Lot, excipient).remaining) == "8 kg"
    assert replayed.get(Lot, dp).remaining == Quantity(Decimal(940), "unit")
    assert replayed.get(Lot, placebo).remaining == Quantity(Decimal(960), "unit")
    assert [replayed.get(Lot, x).location_id for x in (api, dp, placebo)] == [plant, depot, depot]

    # What the batch and packaging records say was consumed is what the lots lost.
    batch_record = replayed.get(ManufacturingBatch, batch)
    assert [(i["lot_number"], Quantity.from_dict(i["quantity"])) for i in batch_record.inputs] == [
        ("API-1", Quantity(Decimal("0.5"), "kg")),
        ("EXC-1", Quantity(Decimal("2"), "kg")),
    ]
    assert batch_record.output_lot_id == dp
    assert batch_record.yield_percent == Decimal("98.00")
    assert replayed.get(Lot, dp).produced_by_batch_id == batch
    packaging = replayed.get(PackagingRun, run)
    assert [(i["lot_number"], Quantity.from_dict(i["quantity"])) for i in packaging.inputs] == [
        ("DP-1", Quantity(Decimal(40), "unit")),
        ("PLC-1", Quantity(Decimal(40), "unit")),
    ]
    assert packaging.expires_on == dp_expiry
    assert packaging.qa_status == "released"
    assert packaging.qp_certified
    assert packaging.sponsor_countries == ["DE"]

    # Kits: one status each, where the record says.
    expected_kits = {
        "K00001": (KitStatus.DESTROYED, None),
        "K00002": (KitStatus.RECEIVED, site),
        "K00003": (KitStatus.RECEIVED, site),
        "K00004": (KitStatus.AVAILABLE, depot),
        "K00005": (KitStatus.RECEIVED, site),
        "K00006": (KitStatus.DESTROYED, None),
        "K00007": (KitStatus.MISSING, None),
        "K00008": (KitStatus.AVAILABLE, depot),
    }
    for number, (status, location) in expected_kits.items():
        kit = replayed.get(Kit, kit_id(number))
        assert (number, kit.status, kit.location_id) == (number, status, location)
        assert kit.expires_on == dp_expiry
        assert kit.packaging_run_id == run
    assert replayed.get(Kit, kit_id("K00001")).subject == "SUBJ-001"

    # The shipment, the site and the trial.
    shipment_record = replayed.get(Shipment, shipment)
    assert shipment_record.status == ShipmentStatus.RECEIVED
    assert shipment_record.kit_numbers == shipped
    assert replayed.get(Location, site).status == SiteStatus.ACTIVATED
    assert replayed.get(Trial, trial).code == "LTL-101"

    # The chain: every event, in order, hashes to the head; nothing more, nothing less.
    assert events == 54
    report = verify_chain(replayed.chain)
    assert report.ok, report.describe()
    assert report.count == events
    assert replayed.chain.count_events() == events
    size, head = replayed.chain.head()
    assert (size, head.hex()) == (events, report.head_hash)
    assert [row.seq for row in replayed.chain.iter_chain()] == list(range(1, events + 1))
