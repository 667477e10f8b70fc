"""Kit rules: release before shipping, custody, receipt, quarantine, dispensing and destruction."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from uuid import UUID

import pytest

from ledger.application import Ledger
from ledger.commands import (
    AuthoriseDestruction,
    CertifyPackaging,
    ConfirmReceipt,
    DecideQuarantine,
    DestroyKits,
    Dispense,
    RecallLot,
    ReportExcursion,
    ReturnKit,
    Ship,
)
from ledger.domain import Kit, KitStatus, Shipment, ShipmentStatus
from ledger.errors import (
    InvalidIdentifier,
    InvalidTransition,
    KitNotUsable,
    KitsNotUsable,
    LedgerError,
    LotNotUsable,
    ReceiptMismatch,
    ReleaseIncomplete,
    ShipmentNotOpen,
    SignatureRequired,
    SiteNotActive,
    WrongSite,
)
from ledger.values import Meaning, now, sign
from tests.builders import Program, actors, sscc, today, writes_nothing


def status(program: Program, number: str) -> KitStatus:
    return program.ledger.get(Kit, program.kit(number)).status


def s1(program: Program) -> UUID:
    return program.shipments["S-1"]


def problems(error: pytest.ExceptionInfo[KitsNotUsable]) -> dict[str, str]:
    """kit number -> reason, from a refused multi-kit step."""
    return {p["kit_number"]: p["reason"] for p in error.value.details["problems"]}


def reasons(error: pytest.ExceptionInfo[KitsNotUsable]) -> dict[UUID, str]:
    """kit id -> reason, from a refused multi-kit step."""
    return {UUID(p["kit_id"]): p["reason"] for p in error.value.details["problems"]}


# --- release before shipping ------------------------------------------------------------------------------


@pytest.fixture
def packaged(ledger: Ledger) -> Program:
    """Kits packaged but not yet released for clinical use."""
    return Program(ledger).reference().materials().formulate().placebo().package()


def test_shipping_before_qa_disposition_is_refused(packaged: Program) -> None:
    with writes_nothing(packaged.ledger, KitsNotUsable) as info:
        packaged.ship(["K00001"])
    expected = ReleaseIncomplete(packaged.run, "P-1", "QA disposition is pending")
    assert reasons(info) == {packaged.kit("K00001"): expected.message}


def test_shipping_before_qp_certification_is_refused(packaged: Program) -> None:
    packaged.release_run(qp=False)
    with writes_nothing(packaged.ledger, KitsNotUsable) as info:
        packaged.ship(["K00001", "K00007"])
    reason = ReleaseIncomplete(packaged.run, "P-1", "no QP certification").message
    assert reasons(info) == {packaged.kit("K00001"): reason, packaged.kit("K00007"): reason}


def test_shipping_without_sponsor_release_for_the_country_is_refused(packaged: Program) -> None:
    packaged.release_run(countries=())
    with writes_nothing(packaged.ledger, KitsNotUsable) as info:
        packaged.ship(["K00001"])
    assert reasons(info) == {
        packaged.kit("K00001"): ReleaseIncomplete(packaged.run, "P-1", "no sponsor release for DE").message
    }


def test_sponsor_release_for_one_country_does_not_release_another(packaged: Program) -> None:
    packaged.release_run(countries=("DE",))
    with writes_nothing(packaged.ledger, KitsNotUsable) as info:
        packaged.ship(["K00001"], to=packaged.fr_site)
    assert reasons(info) == {
        packaged.kit("K00001"): ReleaseIncomplete(packaged.run, "P-1", "no sponsor release for FR").message
    }


def test_qp_cannot_certify_before_qa_disposition(packaged: Program) -> None:
    with writes_nothing(packaged.ledger, InvalidTransition, match="QA pending"):
        packaged.ledger.handle(
            CertifyPackaging(
                run_id=packaged.run,
                signature=sign(actors.qp, Meaning.CERTIFIED),
            ),
            actors.qp,
        )


def test_kits_refused_for_release_reasons_are_named_by_kit_number(packaged: Program) -> None:
    with writes_nothing(packaged.ledger, KitsNotUsable, match="K00001") as info:
        packaged.ship(["K00001"])
    assert list(problems(info)) == ["K00001"]


def test_qa_cannot_release_a_packaged_batch_made_from_a_recalled_lot(packaged: Program) -> None:
    packaged.ledger.handle(
        RecallLot(
            lot_id=packaged.api,
            signature=sign(actors.qa, Meaning.APPROVED),
            reason="API supplier recall",
        ),
        actors.qa,
    )
    with writes_nothing(packaged.ledger, LotNotUsable, match="API-1 cannot be used: an upstream lot"):
        packaged.release_run()


def test_fully_released_kits_ship_and_go_in_transit(program: Program) -> None:
    shipment = program.ship(["K00001", "K00007"])
    assert status(program, "K00001") == status(program, "K00007") == KitStatus.IN_TRANSIT
    kit = program.ledger.get(Kit, program.kit("K00001"))
    assert (kit.shipment_id, kit.destination_id, kit.location_id) == (shipment, program.site, None)


# --- custody and status gates when shipping --------------------------------------------------------------


def test_shipping_a_kit_twice_is_refused(program: Program) -> None:
    program.ship(["K00001"])
    with writes_nothing(program.ledger, KitsNotUsable) as info:
        program.ship(["K00001"], shipment_number="S-2", serial=2)
    assert problems(info) == {"K00001": "kit K00001: is not held at this place; cannot ship"}


def test_shipping_to_a_site_that_is_not_activated_is_refused(program: Program) -> None:
    with writes_nothing(program.ledger, SiteNotActive, match="Site 102 is registered"):
        program.ship(["K00001"], to=program.pending_site)


def test_shipping_with_a_wrong_sscc_check_digit_is_refused(program: Program) -> None:
    good = sscc(1)
    wrong = good[:-1] + str((int(good[-1]) + 1) % 10)
    with writes_nothing(program.ledger, InvalidIdentifier, match="SSCC"):
        program.ledger.handle(
            Ship(
                shipment_number="S-1",
                sscc=wrong,
                from_id=program.depot,
                to_id=program.site,
                kit_ids=program.kits("K00001"),
                min_celsius=Decimal(2),
                max_celsius=Decimal(8),
            ),
            actors.depot,
        )


def test_shipping_after_an_upstream_api_lot_was_recalled_is_refused(program: Program) -> None:
    program.ledger.handle(
        RecallLot(
            lot_id=program.api,
            signature=sign(actors.qa, Meaning.APPROVED),
            reason="API supplier recall",
        ),
        actors.qa,
    )
    with writes_nothing(program.ledger, KitsNotUsable) as info:
        program.ship(["K00001", "K00002"])
    reason = LotNotUsable(program.api, "API-1", "an upstream lot is recalled").message
    assert reasons(info) == {program.kit("K00001"): reason, program.kit("K00002"): reason}


def test_a_recall_stops_placebo_kits_of_the_same_run_too(program: Program) -> None:
    # The run is one packaged batch: a recall of its active API stops every kit, which keeps the blind.
    program.ledger.handle(
        RecallLot(
            lot_id=program.api,
            signature=sign(actors.qa, Meaning.APPROVED),
            reason="API supplier recall",
        ),
        actors.qa,
    )
    with writes_nothing(program.ledger, KitsNotUsable):
        program.ship(["K00010"])


def test_shipment_whose_last_kit_is_not_usable_records_nothing(program: Program) -> None:
    program.ship(["K00005"])
    before = {n: program.ledger.get(Kit, program.kit(n)).version for n in ("K00001", "K00002")}
    with writes_nothing(program.ledger, KitsNotUsable) as info:
        program.ship(["K00001", "K00002", "K00005"], shipment_number="S-2", serial=2)
    assert list(problems(info)) == ["K00005"]
    for number, version in before.items():
        kit = program.ledger.get(Kit, program.kit(number))
        assert (kit.status, kit.version) == (KitStatus.AVAILABLE, version)


def test_do_not_ship_window_refuses_kits_too_close_to_expiry(ledger: Ledger) -> None:
    # DP-1 expires in 20 days; the trial ships nothing within 30 days of expiry.
    program = Program.released(ledger, dp_expires_on=today() + timedelta(days=20))
    with writes_nothing(ledger, KitsNotUsable) as info:
        program.ship(["K00001"])
    closed = today() + timedelta(days=20 - 30)
    assert problems(info)["K00001"] == (
        f"kit K00001: expires {today() + timedelta(days=20)}; the do-not-ship window closed on {closed}"
    )


def test_shipment_cannot_be_dated_before_the_release_that_allowed_it(ledger: Ledger) -> None:
    start = now() - timedelta(days=2)
    program = Program(ledger, start=start).reference().materials().formulate().placebo().package()
    packaged_at = start + timedelta(minutes=program.clock.steps)
    program.release_run()
    with writes_nothing(ledger, LedgerError):
        program.ship(["K00001"], occurred_at=packaged_at + timedelta(seconds=30))


# --- receipt ---------------------------------------------------------------------------------------------


@pytest.fixture
def shipped(program: Program) -> Program:
    """K00001-K00003 shipped to the DE site as S-1."""
    program.ship(["K00001", "K00002", "K00003"])
    return program


def test_receipt_records_received_damaged_and_missing_kits(shipped: Program) -> None:
    written = shipped.ledger.handle(
        ConfirmReceipt(
            shipment_id=s1(shipped),
            site_id=shipped.site,
            outcomes={"K00001": "received", "K00002": "damaged", "K00003": "missing"},
            logger_min=Decimal("2.5"),
            logger_max=Decimal("7.9"),
        ),
        actors.site,
    )
    assert written.facts == {"excursion": False}
    assert [status(shipped, n) for n in ("K00001", "K00002", "K00003")] == [
        KitStatus.RECEIVED,
        KitStatus.DAMAGED,
        KitStatus.MISSING,
    ]
    assert shipped.ledger.get(Kit, shipped.kit("K00001")).location_id == shipped.site
    assert shipped.ledger.get(Kit, shipped.kit("K00003")).location_id is None
    shipment = shipped.ledger.get(Shipment, s1(shipped))
    assert shipment.status == ShipmentStatus.RECEIVED


def test_receipt_naming_a_kit_not_in_the_shipment_is_refused(shipped: Program) -> None:
    outcomes = {"K00001": "received", "K00002": "received", "K00003": "received", "K00004": "received"}
    with writes_nothing(shipped.ledger, ReceiptMismatch) as info:
        shipped.ledger.handle(
            ConfirmReceipt(shipment_id=s1(shipped), site_id=shipped.site, outcomes=outcomes), actors.site
        )
    assert info.value.details["problems"] == [{"kit_number": "K00004", "reason": "not in this shipment"}]


def test_receipt_leaving_a_kit_out_is_refused(shipped: Program) -> None:
    with writes_nothing(shipped.ledger, ReceiptMismatch) as info:
        shipped.ledger.handle(
            ConfirmReceipt(
                shipment_id=s1(shipped),
                site_id=shipped.site,
                outcomes={"K00001": "received", "K00002": "received"},
            ),
            actors.site,
        )
    assert info.value.details["problems"] == [
        {"kit_number": "K00003", "reason": "not accounted for in the receipt"}
    ]


def test_receipt_with_an_unknown_outcome_is_refused(shipped: Program) -> None:
    outcomes = {"K00001": "received", "K00002": "received", "K00003": "stolen"}
    with writes_nothing(shipped.ledger, ReceiptMismatch, match="K00003"):
        shipped.ledger.handle(
            ConfirmReceipt(shipment_id=s1(shipped), site_id=shipped.site, outcomes=outcomes), actors.site
        )


def test_a_second_receipt_of_the_same_shipment_is_refused(shipped: Program) -> None:
    numbers = ["K00001", "K00002", "K00003"]
    shipped.receive_all(s1(shipped), numbers)
    with writes_nothing(shipped.ledger, ShipmentNotOpen, match="S-1 is received"):
        shipped.receive_all(s1(shipped), numbers)


def test_receipt_at_a_site_other_than_the_destination_is_refused(shipped: Program) -> None:
    with writes_nothing(shipped.ledger, WrongSite, match="not addressed to site"):
        shipped.ledger.handle(
            ConfirmReceipt(
                shipment_id=s1(shipped),
                site_id=shipped.fr_site,
                outcomes=dict.fromkeys(["K00001", "K00002", "K00003"], "received"),
            ),
            actors.site,
        )


def test_excursion_at_receipt_quarantines_the_intact_kits(shipped: Program) -> None:
    written = shipped.ledger.handle(
        ConfirmReceipt(
            shipment_id=s1(shipped),
            site_id=shipped.site,
            outcomes={"K00001": "received", "K00002": "received", "K00003": "damaged"},
            logger_min=Decimal("3"),
            logger_max=Decimal("12.5"),
        ),
        actors.site,
    )
    assert written.facts == {"excursion": True}
    assert [status(shipped, n) for n in ("K00001", "K00002", "K00003")] == [
        KitStatus.QUARANTINED,
        KitStatus.QUARANTINED,
        KitStatus.DAMAGED,
    ]

    # QA releases one kit back to stock and rejects the other, which then counts as damaged.
    shipped.ledger.handle(
        DecideQuarantine(
            kit_ids=shipped.kits("K00001"),
            release=True,
            signature=sign(actors.qa, Meaning.RELEASED),
            reason="stability data cover 12.5 °C for 2 h",
        ),
        actors.qa,
    )
    shipped.ledger.handle(
        DecideQuarantine(
            kit_ids=shipped.kits("K00002"),
            release=False,
            signature=sign(actors.qa, Meaning.REJECTED),
            reason="carton wet",
        ),
        actors.qa,
    )
    assert status(shipped, "K00001") == KitStatus.RECEIVED
    assert status(shipped, "K00002") == KitStatus.DAMAGED
    shipped.ledger.handle(
        Dispense(kit_id=shipped.kit("K00001"), site_id=shipped.site, subject="S-001"), actors.site
    )
    assert status(shipped, "K00001") == KitStatus.DISPENSED


def test_quarantine_decision_with_the_wrong_signature_meaning_is_refused(shipped: Program) -> None:
    shipped.receive_all(s1(shipped), ["K00001", "K00002", "K00003"], logger_max="9")
    with writes_nothing(shipped.ledger, SignatureRequired):
        shipped.ledger.handle(
            DecideQuarantine(
                kit_ids=shipped.kits("K00001"),
                release=True,
                signature=sign(actors.qa, Meaning.REJECTED),
                reason="ok",
            ),
            actors.qa,
        )


# --- dispensing -----------------------------------------------------------------------------------------


def test_dispensing_a_kit_still_at_the_depot_is_refused(program: Program) -> None:
    with writes_nothing(program.ledger, KitNotUsable, match="is not held at this place; cannot dispense"):
        program.ledger.handle(
            Dispense(kit_id=program.kit("K00001"), site_id=program.site, subject="S-001"), actors.site
        )


def test_dispensing_before_receipt_is_refused(shipped: Program) -> None:
    with writes_nothing(shipped.ledger, KitNotUsable, match="is not held at this place; cannot dispense"):
        shipped.ledger.handle(
            Dispense(kit_id=shipped.kit("K00001"), site_id=shipped.site, subject="S-001"), actors.site
        )


@pytest.mark.parametrize("outcome", ["damaged", "missing"])
def test_dispensing_a_damaged_or_missing_kit_is_refused(shipped: Program, outcome: str) -> None:
    shipped.ledger.handle(
        ConfirmReceipt(
            shipment_id=s1(shipped),
            site_id=shipped.site,
            outcomes={"K00001": outcome, "K00002": "received", "K00003": "received"},
        ),
        actors.site,
    )
    # a damaged kit is at the site and says so; a missing one never arrived: it is not held there
    said = "is damaged" if outcome == "damaged" else "is not held at this place"
    with writes_nothing(shipped.ledger, KitNotUsable, match=f"{said}; cannot dispense"):
        shipped.ledger.handle(
            Dispense(kit_id=shipped.kit("K00001"), site_id=shipped.site, subject="S-001"), actors.site
        )


def test_dispensing_a_quarantined_kit_is_refused(shipped: Program) -> None:
    shipped.receive_all(s1(shipped), ["K00001", "K00002", "K00003"], logger_max="15")
    with writes_nothing(shipped.ledger, KitNotUsable, match="is quarantined; cannot dispense"):
        shipped.ledger.handle(
            Dispense(kit_id=shipped.kit("K00001"), site_id=shipped.site, subject="S-001"), actors.site
        )


def test_excursion_in_site_storage_quarantines_until_qa_decides(shipped: Program) -> None:
    shipped.receive_all(s1(shipped), ["K00001", "K00002", "K00003"])
    shipped.ledger.handle(
        ReportExcursion(
            location_id=shipped.site,
            kit_ids=shipped.kits("K00002"),
            min_celsius=Decimal("2"),
            max_celsius=Decimal("26"),
            duration_minutes=90,
        ),
        actors.site,
    )
    with writes_nothing(shipped.ledger, KitNotUsable, match="quarantined"):
        shipped.ledger.handle(
            Dispense(kit_id=shipped.kit("K00002"), site_id=shipped.site, subject="S-001"), actors.site
        )


def test_dispensing_at_another_site_than_the_kit_is_refused(shipped: Program) -> None:
    shipped.receive_all(s1(shipped), ["K00001", "K00002", "K00003"])
    with writes_nothing(shipped.ledger, KitNotUsable, match="is not held at this place"):
        shipped.ledger.handle(
            Dispense(kit_id=shipped.kit("K00001"), site_id=shipped.fr_site, subject="S-001"), actors.site
        )


def test_dispensing_after_an_upstream_recall_is_refused(shipped: Program) -> None:
    shipped.receive_all(s1(shipped), ["K00001", "K00002", "K00003"])
    shipped.ledger.handle(
        RecallLot(
            lot_id=shipped.dp,
            signature=sign(actors.qa, Meaning.APPROVED),
            reason="dissolution failure",
        ),
        actors.qa,
    )
    with writes_nothing(shipped.ledger, LotNotUsable, match="upstream lot is recalled"):
        shipped.ledger.handle(
            Dispense(kit_id=shipped.kit("K00001"), site_id=shipped.site, subject="S-001"), actors.site
        )


def test_a_kit_is_dispensed_once(shipped: Program) -> None:
    shipped.receive_all(s1(shipped), ["K00001", "K00002", "K00003"])
    shipped.ledger.handle(
        Dispense(kit_id=shipped.kit("K00001"), site_id=shipped.site, subject="S-001"), actors.site
    )
    with writes_nothing(shipped.ledger, KitNotUsable, match="is dispensed; cannot dispense"):
        shipped.ledger.handle(
            Dispense(kit_id=shipped.kit("K00001"), site_id=shipped.site, subject="S-002"), actors.site
        )


def test_do_not_dispense_window_refuses_kits_too_close_to_expiry(ledger: Ledger) -> None:
    # Kits expire in 5 days, shipped and received 40 days ago (inside the 30-day do-not-ship window
    # then); the trial dispenses nothing within 7 days of expiry.
    expiry = today() + timedelta(days=5)
    program = Program.released(ledger, start=now() - timedelta(days=40), dp_expires_on=expiry)
    program.at_site(["K00001", "K00002"])
    # Three days ago the window was still open ...
    program.ledger.handle(
        Dispense(
            kit_id=program.kit("K00001"),
            site_id=program.site,
            subject="S-001",
            occurred_at=now() - timedelta(days=3),
        ),
        actors.site,
    )
    # ... today it is closed.
    closed = expiry - timedelta(days=7)
    with writes_nothing(ledger, KitNotUsable, match=f"do-not-dispense window closed on {closed}"):
        program.ledger.handle(
            Dispense(kit_id=program.kit("K00002"), site_id=program.site, subject="S-002"), actors.site
        )


# --- return and destruction ------------------------------------------------------------------------------


def test_destruction_without_authorisation_is_refused(shipped: Program) -> None:
    shipped.receive_all(s1(shipped), ["K00001", "K00002", "K00003"])
    kit = shipped.kit("K00001")
    shipped.ledger.handle(Dispense(kit_id=kit, site_id=shipped.site, subject="S-001"), actors.site)
    shipped.ledger.handle(
        ReturnKit(kit_id=kit, site_id=shipped.site, condition="partially_used"), actors.site
    )
    with writes_nothing(shipped.ledger, KitsNotUsable) as info:
        shipped.ledger.handle(
            DestroyKits(location_id=shipped.site, kit_ids=[kit], certificate="DC-1", method="incineration"),
            actors.site,
        )
    assert problems(info) == {"K00001": "kit K00001: is returned; cannot destroy"}

    shipped.ledger.handle(
        AuthoriseDestruction(
            kit_ids=[kit],
            signature=sign(actors.qa, Meaning.AUTHORISED_DESTRUCTION),
            reason="returned, partially used",
        ),
        actors.qa,
    )
    shipped.ledger.handle(
        DestroyKits(location_id=shipped.site, kit_ids=[kit], certificate="DC-1", method="incineration"),
        actors.site,
    )
    assert status(shipped, "K00001") == KitStatus.DESTROYED


def test_destruction_of_a_kit_in_a_subjects_hands_cannot_be_authorised(shipped: Program) -> None:
    shipped.receive_all(s1(shipped), ["K00001", "K00002", "K00003"])
    shipped.ledger.handle(
        Dispense(kit_id=shipped.kit("K00001"), site_id=shipped.site, subject="S-001"), actors.site
    )
    with writes_nothing(shipped.ledger, KitsNotUsable, match="K00001"):
        shipped.ledger.handle(
            AuthoriseDestruction(
                kit_ids=shipped.kits("K00001", "K00002"),
                signature=sign(actors.qa, Meaning.AUTHORISED_DESTRUCTION),
                reason="site close-out",
            ),
            actors.qa,
        )
    assert status(shipped, "K00002") == KitStatus.RECEIVED
