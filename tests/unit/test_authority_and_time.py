"""Authority checks, electronic signatures and time rules (21 CFR 11.10(g), 11.50, 11.70; causal order)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from ledger.application import Ledger
from ledger.commands import (
    ActivateSite,
    AuthoriseDestruction,
    CertifyPackaging,
    DestroyKits,
    Dispense,
    Formulate,
    OutputLot,
    RecallLot,
    ReceiveLot,
    RegisterTrial,
    ReleaseLot,
    Ship,
)
from ledger.domain import ManufacturingBatch
from ledger.errors import InvalidInput, NotAuthorised, SignatureRequired, TimeOrderViolation
from ledger.values import Meaning, now, sign
from tests.builders import API_GTIN, DP_GTIN, Program, actors, q, sscc, today, writes_nothing

# --- roles ------------------------------------------------------------------------------------------------

Step = Callable[[Program], Any]

FORBIDDEN: dict[str, Step] = {
    "site user releases a lot": lambda p: p.ledger.handle(
        ReleaseLot(
            lot_id=p.api,
            signature=sign(actors.site, Meaning.RELEASED),
            results_ref="COA-1",
        ),
        actors.site,
    ),
    "manufacturing releases its own lot": lambda p: p.ledger.handle(
        ReleaseLot(
            lot_id=p.api,
            signature=sign(actors.mfg, Meaning.RELEASED),
            results_ref="COA-1",
        ),
        actors.mfg,
    ),
    "QA ships kits": lambda p: (
        p.ledger.handle(
            Ship(
                shipment_number="S-1",
                sscc=sscc(1),
                from_id=p.depot,
                to_id=p.site,
                kit_ids=p.kits("K00001"),
                min_celsius=Decimal(2),
                max_celsius=Decimal(8),
            ),
            actors.qa,
        ).id
    ),
    "depot formulates": lambda p: (
        p.ledger.handle(
            Formulate(
                batch_number="B-9",
                product="x",
                location_id=p.plant,
                inputs=[(p.api, q("1 g"))],
                output=OutputLot(DP_GTIN, "DP-9", "x", today()),
                theoretical_yield=q("1 unit"),
                actual_yield=q("1 unit"),
                equipment=[],
                checked_by=actors.mfg2,
            ),
            actors.depot,
        ).created
    ),
    "inspector receives a lot": lambda p: (
        p.ledger.handle(
            ReceiveLot(
                gtin=API_GTIN,
                lot_number="API-9",
                kind="api",
                material="x",
                quantity=q("1 kg"),
                location_id=p.plant,
                manufactured_on=today(),
                expires_on=today() + timedelta(days=9),
            ),
            actors.inspector,
        ).id
    ),
    "QA certifies as QP": lambda p: p.ledger.handle(
        CertifyPackaging(
            run_id=p.run,
            signature=sign(actors.qa, Meaning.CERTIFIED),
        ),
        actors.qa,
    ),
    "manufacturing destroys kits": lambda p: p.ledger.handle(
        DestroyKits(
            location_id=p.depot,
            kit_ids=p.kits("K00001"),
            certificate="DC-1",
            method="incineration",
        ),
        actors.mfg,
    ),
    "site user authorises destruction": lambda p: p.ledger.handle(
        AuthoriseDestruction(
            kit_ids=p.kits("K00001"),
            signature=sign(actors.site, Meaning.AUTHORISED_DESTRUCTION),
            reason="expired",
        ),
        actors.site,
    ),
    "depot dispenses": lambda p: p.ledger.handle(
        Dispense(
            kit_id=p.kit("K00001"),
            site_id=p.site,
            subject="S-001",
        ),
        actors.depot,
    ),
    "manufacturing registers a trial": lambda p: (
        p.ledger.handle(
            RegisterTrial(
                code="LTL-999",
                title="t",
                sponsor="s",
                countries=["DE"],
                do_not_ship_days=0,
                do_not_dispense_days=0,
            ),
            actors.mfg,
        ).id
    ),
    "site user activates a site": lambda p: p.ledger.handle(
        ActivateSite(site_id=p.pending_site), actors.site
    ),
    "QP recalls a lot": lambda p: p.ledger.handle(
        RecallLot(
            lot_id=p.api,
            signature=sign(actors.qp, Meaning.APPROVED),
            reason="suspect",
        ),
        actors.qp,
    ),
}


@pytest.mark.parametrize("step", FORBIDDEN.values(), ids=FORBIDDEN.keys())
def test_roles_may_only_take_their_own_steps(program: Program, step: Step) -> None:
    with writes_nothing(program.ledger, NotAuthorised) as info:
        step(program)
    assert info.value.code == "not_authorised"
    assert info.value.details["allowed"], "the error says which roles may take the step"


# --- signatures ---------------------------------------------------------------------------------------


def test_release_signed_with_another_meaning_is_refused(ledger: Ledger) -> None:
    program = Program(ledger).reference().materials()
    api2 = program.receive(gtin=API_GTIN, lot_number="API-2", kind="api", quantity="1 kg", release=False)
    with writes_nothing(ledger, SignatureRequired, match="meaning 'released'"):
        ledger.handle(
            ReleaseLot(lot_id=api2, signature=sign(actors.qa, Meaning.REVIEWED), results_ref="COA"), actors.qa
        )


def test_release_without_a_signature_is_refused(ledger: Ledger) -> None:
    program = Program(ledger).reference().materials()
    api2 = program.receive(gtin=API_GTIN, lot_number="API-2", kind="api", quantity="1 kg", release=False)
    with writes_nothing(ledger, SignatureRequired):
        ledger.handle(ReleaseLot(lot_id=api2, signature=None, results_ref="COA"), actors.qa)


def test_release_with_someone_elses_signature_is_refused(ledger: Ledger) -> None:
    program = Program(ledger).reference().materials()
    api2 = program.receive(gtin=API_GTIN, lot_number="API-2", kind="api", quantity="1 kg", release=False)
    with writes_nothing(ledger, InvalidInput, match="acting user's own") as info:
        ledger.handle(
            ReleaseLot(lot_id=api2, signature=sign(actors.qa2, Meaning.RELEASED), results_ref="COA"),
            actors.qa,
        )
    assert info.value.details["field"] == "signature"


def test_qp_certification_signed_by_someone_else_is_refused(ledger: Ledger) -> None:
    program = Program(ledger).reference().materials().formulate().placebo().package().release_run(qp=False)
    with writes_nothing(ledger, InvalidInput, match="acting user's own"):
        ledger.handle(
            CertifyPackaging(run_id=program.run, signature=sign(actors.qa, Meaning.CERTIFIED)), actors.qp
        )


def test_the_signature_is_stored_with_the_record_it_signs(ledger: Ledger) -> None:
    program = Program(ledger).reference().materials()
    release = [
        n
        for n in ledger.recorder.select_notifications(start=1, limit=1000)
        if n.originator_id == program.api and n.topic.endswith("Lot.Released")
    ]
    assert len(release) == 1
    signature = json.loads(release[0].state)["signature"]
    assert signature["signer"] == "qa1"
    assert signature["printed_name"] == "Quinn QA"
    assert signature["meaning"] == "released"
    assert signature["signed_at"]


# --- time ------------------------------------------------------------------------------------------------


def test_an_event_dated_in_the_future_is_refused(program: Program) -> None:
    with writes_nothing(program.ledger, TimeOrderViolation, match="in the future"):
        program.ship(["K00001"], occurred_at=now() + timedelta(hours=1))


def test_an_event_time_without_timezone_is_refused(program: Program) -> None:
    with writes_nothing(program.ledger, InvalidInput, match="timezone"):
        program.ship(["K00001"], occurred_at=now().replace(tzinfo=None))


@pytest.fixture
def yesterday_program(ledger: Ledger) -> Program:
    """A program whose set-up happened yesterday, so that today's steps can be dated in between."""
    return Program.released(ledger, start=now() - timedelta(days=1))


def test_receipt_before_the_shipment_left_is_refused(yesterday_program: Program) -> None:
    program = yesterday_program
    shipped_at = now() - timedelta(minutes=10)
    shipment = program.ship(["K00001"], occurred_at=shipped_at)
    with writes_nothing(program.ledger, TimeOrderViolation, match="before the previous step"):
        program.receive_all(shipment, ["K00001"], occurred_at=shipped_at - timedelta(seconds=1))


def test_release_dated_before_the_lot_was_received_is_refused(ledger: Ledger) -> None:
    program = Program(ledger).reference()
    received_at = now() - timedelta(hours=1)
    lot = ledger.handle(
        ReceiveLot(
            gtin=API_GTIN,
            lot_number="API-1",
            kind="api",
            material="x",
            quantity=q("1 kg"),
            location_id=program.plant,
            manufactured_on=today() - timedelta(days=9),
            expires_on=today() + timedelta(days=900),
            occurred_at=received_at,
        ),
        actors.mfg,
    ).id
    with writes_nothing(ledger, TimeOrderViolation):
        ledger.handle(
            ReleaseLot(
                lot_id=lot,
                signature=sign(actors.qa, Meaning.RELEASED),
                results_ref="COA",
                occurred_at=received_at - timedelta(minutes=1),
            ),
            actors.qa,
        )


def test_dispensing_dated_before_the_receipt_is_refused(yesterday_program: Program) -> None:
    program = yesterday_program
    received_at = now() - timedelta(minutes=5)
    shipment = program.ship(["K00001"], occurred_at=received_at - timedelta(minutes=5))
    program.receive_all(shipment, ["K00001"], occurred_at=received_at)
    with writes_nothing(program.ledger, TimeOrderViolation):
        program.ledger.handle(
            Dispense(
                kit_id=program.kit("K00001"),
                site_id=program.site,
                subject="S-001",
                occurred_at=received_at - timedelta(seconds=1),
            ),
            actors.site,
        )


def test_a_server_stamped_step_that_meets_a_later_concurrent_step_is_stamped_again(
    program: Program, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two requests without a time: the first stamps the clock, the second stamps a moment later but
    commits first. The first is a race, not a claim about time: it is run again with a fresh stamp."""
    start = now()
    # the request that stamped a moment later and won the race
    program.formulate_batch(
        [(program.api, "1 g")],
        batch_number="B-WON",
        lot_number="DP-WON",
        occurred_at=start + timedelta(seconds=1),
    )
    clock = iter([start, start + timedelta(seconds=2)])
    monkeypatch.setattr("ledger.domain.base.now", lambda: next(clock, start + timedelta(seconds=3)))
    batch, _ = program.formulate_batch([(program.api, "1 g")], batch_number="B-RACE", lot_number="DP-RACE")
    assert program.ledger.get(ManufacturingBatch, batch).batch_number == "B-RACE"
