"""Material rules: lot status gates, mass balance, units, packaging reconciliation, corrections."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from ledger.application import Ledger
from ledger.commands import (
    Arm,
    CorrectLotQuantity,
    Formulate,
    HoldLot,
    OutputLot,
    Package,
    RecallLot,
    RegisterLocation,
    RejectLot,
)
from ledger.domain import Kit, Lot, LotStatus, ManufacturingBatch, PackagingRun
from ledger.errors import (
    AlreadyExists,
    BatchNotFound,
    InsufficientQuantity,
    InvalidIdentifier,
    InvalidInput,
    InvalidTransition,
    LotNotFound,
    LotNotUsable,
    UnitMismatch,
)
from ledger.gs1 import with_check_digit
from ledger.values import Meaning, Quantity, now, sign
from tests.builders import (
    API_GTIN,
    DP_GTIN,
    EXCIPIENT_GTIN,
    KIT_GTIN,
    Program,
    actors,
    q,
    today,
    writes_nothing,
)


@pytest.fixture
def prepared(ledger: Ledger) -> Program:
    """Released API, excipient, DP-1 (980 units) and placebo (1000 units), the last two transferred
    to the depot that packages; nothing packaged yet."""
    program = Program(ledger).reference().materials().formulate().placebo()
    program.transfer(program.dp, program.depot)
    program.transfer(program.placebo_lot, program.depot)
    return program


def lot(ledger: Ledger, lot_id: UUID) -> Lot:
    return ledger.get(Lot, lot_id)


# --- formulation: mass balance and units ---------------------------------------------------------------


def test_formulation_consumes_500_g_from_a_2_kg_lot_leaving_exactly_1_5_kg(prepared: Program) -> None:
    api = lot(prepared.ledger, prepared.api)
    assert api.received == Quantity(Decimal("2"), "kg")
    assert api.remaining == Quantity(Decimal("1.5"), "kg")
    assert str(api.remaining) == "1.5 kg"
    batch = prepared.ledger.get(ManufacturingBatch, prepared.batch)
    assert [i["quantity"] for i in batch.inputs] == [
        {"amount": "0.5", "unit": "kg"},
        {"amount": "2", "unit": "kg"},
    ]
    assert batch.yield_percent == Decimal("98.00")


def test_milligrams_consumed_from_a_kilogram_lot_are_exact(prepared: Program) -> None:
    prepared.formulate_batch([(prepared.api, "1 mg"), (prepared.excipient, "250000 mg")])
    assert lot(prepared.ledger, prepared.api).remaining == Quantity(Decimal("1.499999"), "kg")
    assert lot(prepared.ledger, prepared.excipient).remaining == Quantity(Decimal("7.75"), "kg")


def test_formulation_can_consume_the_last_gram_exactly(prepared: Program) -> None:
    prepared.formulate_batch([(prepared.api, "1500 g")])
    assert lot(prepared.ledger, prepared.api).remaining.amount == 0


def test_over_consumption_in_formulation_is_refused(prepared: Program) -> None:
    with writes_nothing(prepared.ledger, InsufficientQuantity) as info:
        prepared.formulate_batch([(prepared.api, "1500.001 g")])
    assert info.value.details["lot_number"] == "API-1"
    assert info.value.details["remaining"] == "1.5 kg"
    assert info.value.details["asked"] == "1500.001 g"


def test_mass_from_a_counted_lot_is_a_unit_mismatch(prepared: Program) -> None:
    with writes_nothing(prepared.ledger, UnitMismatch, match="counted in kg, not unit"):
        prepared.formulate_batch([(prepared.api, "5 unit")])


def test_zero_quantity_consumption_is_refused(prepared: Program) -> None:
    with writes_nothing(prepared.ledger, InvalidInput, match="must be positive"):
        prepared.formulate_batch([(prepared.api, "0 g")])


def test_formulation_needs_an_api_lot(prepared: Program) -> None:
    with writes_nothing(prepared.ledger, InvalidInput, match="at least one API"):
        prepared.formulate_batch([(prepared.excipient, "1 kg")])


def test_formulation_of_a_lot_listed_twice_is_refused(prepared: Program) -> None:
    with writes_nothing(prepared.ledger, InvalidInput, match="listed once"):
        prepared.formulate_batch([(prepared.api, "1 g"), (prepared.api, "1 g")])


def test_formulation_with_an_unknown_lot_is_refused(prepared: Program) -> None:
    unknown = Lot.create_id(API_GTIN, "NOPE")
    with writes_nothing(prepared.ledger, LotNotFound):
        prepared.formulate_batch([(unknown, "1 g")])


def test_second_person_check_by_the_performer_is_refused(prepared: Program) -> None:
    with writes_nothing(prepared.ledger, InvalidInput, match="someone else"):
        prepared.ledger.handle(
            Formulate(
                batch_number="B-9",
                product="x",
                location_id=prepared.plant,
                inputs=[(prepared.api, q("1 g"))],
                output=_output("DP-9", prepared),
                theoretical_yield=q("10 unit"),
                actual_yield=q("10 unit"),
                equipment=[],
                checked_by=actors.mfg,
            ),
            actors.mfg,
        )


def _output(lot_number: str, program: Program) -> OutputLot:
    return OutputLot(DP_GTIN, lot_number, "tablets", program.dp_expires_on)


# --- formulation: lot status gates ---------------------------------------------------------------------


def _second_api(program: Program, *, release: bool = True, **options: Any) -> UUID:
    return program.receive(
        gtin=API_GTIN, lot_number="API-2", kind="api", quantity="1 kg", release=release, **options
    )


def test_consuming_a_quarantined_lot_is_refused(prepared: Program) -> None:
    api2 = _second_api(prepared, release=False)
    assert lot(prepared.ledger, api2).status == LotStatus.QUARANTINE
    with writes_nothing(prepared.ledger, LotNotUsable, match="status is quarantine"):
        prepared.formulate_batch([(api2, "10 g")])


def test_consuming_a_rejected_lot_is_refused(prepared: Program) -> None:
    api2 = _second_api(prepared, release=False)
    prepared.ledger.handle(
        RejectLot(
            lot_id=api2,
            signature=sign(actors.qa, Meaning.REJECTED),
            reason="assay out of specification",
        ),
        actors.qa,
    )
    with writes_nothing(prepared.ledger, LotNotUsable, match="status is rejected"):
        prepared.formulate_batch([(api2, "10 g")])


def test_consuming_a_recalled_lot_is_refused(prepared: Program) -> None:
    prepared.ledger.handle(
        RecallLot(
            lot_id=prepared.api,
            signature=sign(actors.qa, Meaning.APPROVED),
            reason="supplier notified contamination",
        ),
        actors.qa,
    )
    with writes_nothing(prepared.ledger, LotNotUsable, match="status is recalled") as info:
        prepared.formulate_batch([(prepared.api, "10 g")])
    assert info.value.details["lot_number"] == "API-1"


def test_consuming_a_lot_on_hold_is_refused(prepared: Program) -> None:
    prepared.ledger.handle(HoldLot(lot_id=prepared.api, reason="deviation under investigation"), actors.qa)
    with writes_nothing(prepared.ledger, LotNotUsable, match="status is on_hold"):
        prepared.formulate_batch([(prepared.api, "10 g")])


def test_consuming_an_expired_lot_is_refused(ledger: Ledger) -> None:
    program = Program(ledger, start=now() - timedelta(days=20)).reference().materials()
    expiring = _second_api(program, expires_on=program.today + timedelta(days=10))
    with writes_nothing(ledger, LotNotUsable, match="expired or due for retest"):
        program.formulate_batch([(expiring, "10 g")], occurred_at=now())


def test_a_released_lot_cannot_be_released_again(prepared: Program) -> None:
    with writes_nothing(prepared.ledger, InvalidTransition, match="is released; cannot release"):
        prepared.release(prepared.api)


def test_a_rejected_lot_cannot_be_released(prepared: Program) -> None:
    api2 = _second_api(prepared, release=False)
    prepared.ledger.handle(
        RejectLot(
            lot_id=api2,
            signature=sign(actors.qa, Meaning.REJECTED),
            reason="failed identity test",
        ),
        actors.qa,
    )
    with writes_nothing(prepared.ledger, InvalidTransition, match="is rejected; cannot release"):
        prepared.release(api2)


# --- packaging -----------------------------------------------------------------------------------------


def _package(
    program: Program, arms: list[Arm], kit_list: list[tuple[str, str]], batch_number: str = "P-9"
) -> UUID:
    return program.ledger.handle(
        Package(
            batch_number=batch_number,
            trial_id=program.trial,
            location_id=program.depot,
            kit_gtin=KIT_GTIN,
            label_version="v1",
            arms=arms,
            kit_list=kit_list,
            checked_by=actors.mfg2,
        ),
        actors.mfg,
    ).id


def test_over_consumption_in_packaging_is_refused(prepared: Program) -> None:
    # DP-1 holds 980 tablets; 99 kits of 10 need 990.
    kit_list = [(f"K{i:05d}", "A") for i in range(1, 100)]
    with writes_nothing(prepared.ledger, InsufficientQuantity) as info:
        _package(prepared, [Arm("A", prepared.dp, 10, 990)], kit_list)
    assert info.value.details["lot_number"] == "DP-1"
    assert info.value.details["remaining"] == "980 unit"


def test_packaging_run_whose_kits_samples_and_rejects_do_not_add_up_is_refused(prepared: Program) -> None:
    kit_list = [("K00001", "A"), ("K00002", "A")]
    # 2 kits x 10 + 3 samples + 1 reject = 24, but 25 were issued: one tablet is unaccounted for.
    with writes_nothing(prepared.ledger, InvalidInput, match="= 24 units, but 25 were issued") as info:
        _package(prepared, [Arm("A", prepared.dp, 10, 25, samples=3, rejects=1)], kit_list)
    assert info.value.details["field"] == "arms"


def test_packaging_run_that_reconciles_consumes_every_unit_issued(prepared: Program) -> None:
    kit_list = [("K00001", "A"), ("K00002", "A"), ("K00003", "P")]
    run_id = _package(
        prepared,
        [Arm("A", prepared.dp, 10, 24, samples=3, rejects=1), Arm("P", prepared.placebo_lot, 10, 10)],
        kit_list,
    )
    assert lot(prepared.ledger, prepared.dp).remaining == Quantity(Decimal(956), "unit")
    assert lot(prepared.ledger, prepared.placebo_lot).remaining == Quantity(Decimal(990), "unit")
    run = prepared.ledger.get(PackagingRun, run_id)
    assert run.kit_numbers == ["K00001", "K00002", "K00003"]
    assert run.expires_on == prepared.dp_expires_on  # the earliest of what went in


def test_packaging_a_kit_list_with_an_arm_missing_is_refused(prepared: Program) -> None:
    with writes_nothing(prepared.ledger, InvalidInput, match="exactly one arm"):
        _package(prepared, [Arm("A", prepared.dp, 10, 10)], [("K00001", "A"), ("K00002", "P")])


def test_packaging_an_api_lot_into_kits_is_refused(prepared: Program) -> None:
    prepared.transfer(prepared.api, prepared.depot)
    with writes_nothing(prepared.ledger, LotNotUsable, match="only drug-product lots"):
        _package(prepared, [Arm("A", prepared.api, 10, 10)], [("K00001", "A")])


def test_packaging_a_quarantined_drug_product_is_refused(ledger: Ledger) -> None:
    program = Program(ledger).reference().materials().formulate(release=False).placebo()
    program.transfer(program.dp, program.depot)  # a lot in quarantine may travel; it is not used
    with writes_nothing(ledger, LotNotUsable, match="status is quarantine"):
        _package(program, [Arm("A", program.dp, 10, 10)], [("K00001", "A")])


def test_kit_numbers_are_created_once(program: Program) -> None:
    # K00001 already exists from run P-1: a second run may not commission it again.
    with writes_nothing(program.ledger, AlreadyExists, match="K00001"):
        _package(program, [Arm("A", program.dp, 10, 10)], [("K00001", "A")], batch_number="P-2")
    assert program.ledger.get(Kit, program.kit("K00001")).packaging_run_id == program.run


# --- identity ----------------------------------------------------------------------------------------


def test_registering_the_same_lot_twice_is_refused(prepared: Program) -> None:
    with writes_nothing(prepared.ledger, AlreadyExists, match="API-1 already exists"):
        prepared.receive(gtin=API_GTIN, lot_number="API-1", kind="api", quantity="5 kg", release=False)
    assert lot(prepared.ledger, prepared.api).received == Quantity(Decimal("2"), "kg")


def test_the_same_lot_number_under_another_gtin_is_another_lot(prepared: Program) -> None:
    other = prepared.receive(
        gtin=EXCIPIENT_GTIN, lot_number="API-1", kind="excipient", quantity="1 kg", release=False
    )
    assert other != prepared.api


def test_a_batch_number_is_used_once(prepared: Program) -> None:
    with writes_nothing(prepared.ledger, AlreadyExists):
        prepared.formulate_batch([(prepared.api, "1 g")], batch_number="B-1", lot_number="DP-3")


def test_lot_with_a_wrong_gtin_check_digit_is_refused(prepared: Program) -> None:
    wrong = API_GTIN[:-1] + str((int(API_GTIN[-1]) + 1) % 10)
    with writes_nothing(prepared.ledger, InvalidIdentifier, match="wrong check digit"):
        prepared.receive(gtin=wrong, lot_number="API-9", kind="api", quantity="1 kg")


def test_location_with_a_wrong_gln_check_digit_is_refused(ledger: Ledger) -> None:
    gln = with_check_digit("400000000009")
    wrong = gln[:-1] + str((int(gln[-1]) + 1) % 10)
    with writes_nothing(ledger, InvalidIdentifier, match="GLN"):
        ledger.handle(RegisterLocation(gln=wrong, kind="depot", name="D", country="DE"), actors.admin)


def test_a_lot_that_expires_before_it_was_made_is_refused(prepared: Program) -> None:
    with writes_nothing(prepared.ledger, InvalidInput, match="expiry must be after manufacture"):
        prepared.receive(
            gtin=API_GTIN,
            lot_number="API-9",
            kind="api",
            quantity="1 kg",
            manufactured_on=today(),
            expires_on=today() - timedelta(days=1),
        )


# --- corrections -----------------------------------------------------------------------------------------


def test_correction_references_the_corrected_event_and_leaves_it_intact(prepared: Program) -> None:
    ledger = prepared.ledger
    api2 = prepared.receive(gtin=API_GTIN, lot_number="API-2", kind="api", quantity="1 kg", release=False)
    written = ledger.handle(
        CorrectLotQuantity(
            lot_id=api2,
            corrects_version=1,
            quantity=q("1200 g"),
            reason="weighing slip misread",
        ),
        actors.qa,
    )
    assert [(e.stream, e.version) for e in written.events] == [(api2, 2)]

    # Both events are in the notification log: the original as recorded, the correction after it.
    notes = [
        n for n in ledger.recorder.select_notifications(start=1, limit=10_000) if n.originator_id == api2
    ]
    assert [(n.originator_version, n.topic.rsplit(".", 1)[-1]) for n in notes] == [
        (1, "Received"),
        (2, "QuantityCorrected"),
    ]
    original, correction = (json.loads(n.state) for n in notes)
    assert original["quantity"] == {"amount": "1", "unit": "kg"}
    assert correction["corrects_version"] == 1
    assert correction["quantity"] == {"amount": "1.2", "unit": "kg"}
    assert correction["audit"]["reason"] == "weighing slip misread"
    assert correction["audit"]["principal"] == "qa1"

    corrected = lot(ledger, api2)
    assert corrected.received == corrected.remaining == Quantity(Decimal("1.2"), "kg")


def test_correction_below_what_was_already_consumed_is_refused(prepared: Program) -> None:
    # 500 g of API-1 went into B-1: its received quantity cannot be corrected to 400 g.
    with writes_nothing(prepared.ledger, InsufficientQuantity):
        prepared.ledger.handle(
            CorrectLotQuantity(
                lot_id=prepared.api,
                corrects_version=1,
                quantity=q("400 g"),
                reason="recount",
            ),
            actors.qa,
        )


def test_correction_of_a_version_that_does_not_exist_is_refused(prepared: Program) -> None:
    with writes_nothing(prepared.ledger, InvalidInput, match="no event version 9"):
        prepared.ledger.handle(
            CorrectLotQuantity(
                lot_id=prepared.api,
                corrects_version=9,
                quantity=q("2 kg"),
                reason="recount",
            ),
            actors.qa,
        )


def test_correction_without_a_reason_is_refused(prepared: Program) -> None:
    with writes_nothing(prepared.ledger, InvalidInput, match="reason"):
        prepared.ledger.handle(
            CorrectLotQuantity(
                lot_id=prepared.api,
                corrects_version=1,
                quantity=q("2.1 kg"),
                reason="  ",
            ),
            actors.qa,
        )


# --- atomicity (also on PostgreSQL in tests/integration) ------------------------------------------------


def test_formulation_whose_third_lot_is_over_consumed_records_nothing(prepared: Program) -> None:
    exc2 = prepared.receive(gtin=EXCIPIENT_GTIN, lot_number="EXC-2", kind="excipient", quantity="1 kg")
    versions = {i: lot(prepared.ledger, i).version for i in (prepared.api, prepared.excipient, exc2)}
    with writes_nothing(prepared.ledger, InsufficientQuantity, match="EXC-2"):
        prepared.formulate_batch([(prepared.api, "100 g"), (prepared.excipient, "1 kg"), (exc2, "2 kg")])
    for lot_id, version in versions.items():
        assert lot(prepared.ledger, lot_id).version == version
    assert lot(prepared.ledger, prepared.api).remaining == Quantity(Decimal("1.5"), "kg")
    with pytest.raises(BatchNotFound):
        prepared.ledger.get(ManufacturingBatch, ManufacturingBatch.create_id("B-2"))


def test_batch_record_writes_converted_weights_in_plain_digits(prepared: Program) -> None:
    exc_g = prepared.receive(gtin=EXCIPIENT_GTIN, lot_number="EXC-G", kind="excipient", quantity="5000 g")
    batch_id, _ = prepared.formulate_batch([(prepared.api, "10 g"), (exc_g, "2 kg")])
    batch = prepared.ledger.get(ManufacturingBatch, batch_id)
    assert batch.inputs[1]["quantity"] == {"amount": "2000", "unit": "g"}
    assert lot(prepared.ledger, exc_g).remaining == Quantity(Decimal(3000), "g")


def test_an_in_house_placebo_batch_is_made_from_excipients_only(prepared: Program) -> None:
    L = prepared.ledger

    def placebo(inputs: list[tuple[UUID, str]], **extra: Any) -> Any:
        return L.handle(
            Formulate(
                batch_number="PB-1",
                product="Placebo to Lotlinib 10 mg",
                location_id=prepared.plant,
                inputs=[(lot, q(amount)) for lot, amount in inputs],
                output=OutputLot(DP_GTIN, "PLC-IH-1", "placebo tablets", prepared.today + timedelta(300)),
                theoretical_yield=Quantity.of(1000, "unit"),
                actual_yield=Quantity.of(990, "unit"),
                checked_by=actors.mfg2,
                **extra,
            ),
            actors.mfg,
        )

    with writes_nothing(L, InvalidInput, "says `placebo`"):
        placebo([(prepared.excipient, "1 kg")])
    with writes_nothing(L, InvalidInput, "a placebo batch consumes no API lot"):
        placebo([(prepared.api, "1 g"), (prepared.excipient, "1 kg")], placebo=True)
    batch_id, lot_id = placebo([(prepared.excipient, "1 kg")], placebo=True).created
    batch = L.get(ManufacturingBatch, batch_id)
    assert [i["kind"] for i in batch.inputs] == ["excipient"]
    made = L.get(Lot, lot_id)
    assert (made.kind, made.status) == ("drug_product", LotStatus.QUARANTINE)
    assert made.produced_by_batch_id == batch_id
