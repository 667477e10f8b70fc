"""Capture is all or nothing: a bad event refuses the whole document, with its index and reason."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from epcis import Epcis
from epcis.capture import captured
from epcis.eventhash import event_hash_id
from epcis.ids import lgtin, sgtin
from ledger.application import Ledger
from ledger.commands import Arm, Package, Ship
from ledger.domain import Kit, KitStatus
from ledger.gs1 import with_check_digit
from tests.builders import KIT_GTIN, Program, actors
from tests.epcis_reference import load
from tests.integration.epcis_helpers import ALL_ROLES, demo, events, exported, rehashed, second_url  # noqa: F401


@pytest.fixture
def partner_document(database_url: str) -> Iterator[dict[str, Any]]:
    """The demo program as a partner would send it (unblinded), from a store of its own."""
    ledger = Ledger.open(database_url)
    demo(ledger)
    epcis = Epcis(ledger, database_url)
    yield exported(epcis, blinded=False)
    epcis.close()
    ledger.close()


@pytest.fixture
def target(second_url: str) -> Iterator[tuple[Ledger, Epcis]]:  # noqa: F811
    ledger = Ledger.open(second_url)
    epcis = Epcis(ledger, second_url)
    yield ledger, epcis
    epcis.close()
    ledger.close()


def _formulations(doc: dict[str, Any]) -> list[int]:
    return [i for i, e in enumerate(events(doc)) if e.get("bizStep") == "creating_class_instance"]


def _refused_whole(target: tuple[Ledger, Epcis], doc: dict[str, Any]) -> Any:
    ledger, epcis = target
    result = epcis.capture(doc, ALL_ROLES)
    assert not result.accepted
    assert result.recorded == 0 and result.ledger_events == 0
    assert ledger.chain.head()[0] == 0, "a refused document recorded events"
    with epcis.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(captured)).scalar() == 0
    return result


def test_a_document_naming_an_unknown_lot_is_refused_whole(
    partner_document: dict[str, Any], target: Any
) -> None:
    doc = copy.deepcopy(partner_document)
    first = _formulations(doc)[0]
    element = events(doc)[first]["inputQuantityList"][0]
    gtin = with_check_digit("0406999900010")
    element["epcClass"] = lgtin(gtin, "API-9999")
    result = _refused_whole(target, rehashed(doc, first))
    assert [(e.index, e.code) for e in result.errors] == [(first, "not_found")]
    assert "does not exist" in result.errors[0].reason


def test_over_consumption_across_the_document_is_refused(
    partner_document: dict[str, Any], target: Any
) -> None:
    """Each formulation alone fits the lot it draws on; the second one, after the first, does not."""
    doc = copy.deepcopy(partner_document)
    first, second = _formulations(doc)[:2]
    shared = {q["epcClass"] for q in events(doc)[first]["inputQuantityList"]} & {
        q["epcClass"] for q in events(doc)[second]["inputQuantityList"]
    }
    assert shared, "the demo's second batch blends the first batch's API lot"
    api = sorted(shared)[0]
    received = next(
        q
        for e in events(doc)
        if e.get("action") == "ADD" and "errorDeclaration" not in e
        for q in e.get("quantityList", [])
        if q["epcClass"] == api
    )
    for q in events(doc)[second]["inputQuantityList"]:
        if q["epcClass"] == api:
            q.update(quantity=received["quantity"], uom=received.get("uom"))
    result = _refused_whole(target, rehashed(doc, second))
    assert [(e.index, e.code) for e in result.errors][:1] == [(second, "insufficient_quantity")]
    assert first not in {e.index for e in result.errors}


def test_a_schema_invalid_event_refuses_the_document(partner_document: dict[str, Any], target: Any) -> None:
    doc = copy.deepcopy(partner_document)
    del events(doc)[5]["eventTimeZoneOffset"]
    doc["epcisBody"]["eventList"][5] = events(doc)[5]
    result = _refused_whole(target, doc)
    assert [(e.index, e.code) for e in result.errors] == [(5, "invalid_epcis")]
    assert "eventTimeZoneOffset" in result.errors[0].reason


def test_a_destroying_event_at_a_place_that_does_not_hold_the_kits_is_refused(
    partner_document: dict[str, Any], target: Any
) -> None:
    """The place of a destroying event is where its kits are destroyed: it must hold them."""
    doc = copy.deepcopy(partner_document)
    index, destroying = next((i, e) for i, e in enumerate(events(doc)) if e.get("bizStep") == "destroying")
    site = destroying["bizLocation"]
    assert destroying["readPoint"] == site  # exported with the site that destroyed them
    depot = next(e["sourceList"][0]["source"] for e in events(doc) if e.get("bizStep") == "shipping")
    assert site != {"id": depot}
    destroying["readPoint"] = destroying["bizLocation"] = {"id": depot}
    result = _refused_whole(target, rehashed(doc, index))
    assert [(e.index, e.code) for e in result.errors] == [(index, "kits_not_usable")]
    assert result.errors[0].reason.startswith("cannot destroy ")


def test_a_user_without_the_role_for_a_step_is_refused(partner_document: dict[str, Any], target: Any) -> None:
    ledger, epcis = target
    result = epcis.capture(partner_document, [actors.site])
    assert not result.accepted
    assert "not_authorised" in {e.code for e in result.errors}
    assert ledger.chain.head()[0] == 0


def _official_receipt_state(ledger: Ledger) -> tuple[Program, list[str]]:
    """Kits GTIN 0952000112346x, serials 10000001001-1010, shipped to GLN 952999999999x (GS1's example)."""
    program = Program(ledger, start=datetime(2020, 6, 1, tzinfo=UTC))
    program.reference()
    site = program._site(with_check_digit("952999999999"), "Example site", "DE", "999", activate=True)
    program.materials().formulate().placebo()
    kit_gtin = with_check_digit("0952000112346")
    numbers = [f"1000000{n}" for n in range(1001, 1011)]
    program.kit_numbers = numbers
    program.transfer(program.dp, program.depot)
    program.transfer(program.placebo_lot, program.depot)
    program.run = ledger.handle(
        Package(
            batch_number="P-EX",
            trial_id=program.trial,
            location_id=program.depot,
            kit_gtin=kit_gtin,
            label_version="v1",
            arms=[Arm("A", program.dp, 10, 60), Arm("P", program.placebo_lot, 10, 40)],
            kit_list=[(n, "A" if i < 6 else "P") for i, n in enumerate(numbers)],
            checked_by=actors.mfg2,
            occurred_at=program.clock(),
        ),
        actors.mfg,
    ).id
    program.release_run()
    ledger.handle(
        Ship(
            shipment_number="SH-EX",
            sscc=with_check_digit("34000000000000001"),
            from_id=program.depot,
            to_id=site,
            kit_ids=[Kit.create_id(kit_gtin, n) for n in numbers],
            min_celsius=Decimal(2),
            max_celsius=Decimal(8),
            occurred_at=program.clock(),
        ),
        actors.depot,
    )
    return program, [str(Kit.create_id(kit_gtin, n)) for n in numbers]


def test_an_official_gs1_receipt_example_is_captured_as_it_is(database_url: str) -> None:
    ledger = Ledger.open(database_url)
    epcis = Epcis(ledger, database_url)
    try:
        _, kits = _official_receipt_state(ledger)
        official = load("examples", "valid", "PersistentDisposition-example.jsonld")
        head = ledger.chain.head()
        # GS1's examples carry made-up hash IDs (the same one in several files): each claims to be the hash
        # of an event it does not hash, so the document as it is goes no further.
        as_is = epcis.capture(official, [actors.site, actors.qa])
        assert [(e.index, e.code, e.pointer) for e in as_is.errors] == [
            (i, "epcis_nonconforming", f"/epcisBody/eventList/{i}/eventID") for i in (0, 1)
        ]
        assert as_is.errors[0].event_id == events(official)[0]["eventID"]
        assert event_hash_id(events(official)[0], official["@context"]) in as_is.errors[0].reason
        official = rehashed(official, 0, 1)
        whole = epcis.capture(official, [actors.site, actors.qa])
        assert not whole.accepted
        assert [e.index for e in whole.errors] == [1]
        assert "inspecting" in whole.errors[0].reason
        assert ledger.chain.head() == head
        receipt = copy.deepcopy(official)
        receipt["epcisBody"]["eventList"] = events(official)[:1]
        result = epcis.capture(receipt, [actors.site])
        assert result.accepted, result.errors
        # given back as GS1 wrote it: its ID, time and offset, transactions, owning parties, persistent
        # disposition (which the ledger does not hold), bar the time Lotline recorded it
        listed = events(exported(epcis, blinded=True))
        (back,) = [e for e in listed if e["eventID"] == events(receipt)[0]["eventID"]]
        assert {k: v for k, v in back.items() if k != "recordTime"} == events(receipt)[0]
        assert {ledger.get(Kit, Kit.create_id(*_key(k))).status for k in events(official)[0]["epcList"]} == {
            KitStatus.RECEIVED
        }
        assert len(kits) == 10
        resent = epcis.capture(receipt, [actors.site])
        assert resent.accepted and resent.recorded == 0 and resent.duplicates == 1
    finally:
        epcis.close()
        ledger.close()


def _key(epc: str) -> tuple[str, str]:
    from epcis.ids import parse

    key = parse(epc)
    assert key is not None
    return key.gtin, key.serial


def test_an_event_lotline_has_no_step_for_is_refused_in_words_not_python(
    partner_document: dict[str, Any], target: Any
) -> None:
    doc = copy.deepcopy(partner_document)
    inspected = {
        "type": "ObjectEvent", "eventTime": "2026-01-05T10:00:00Z", "eventTimeZoneOffset": "+00:00",
        "action": "OBSERVE", "bizStep": "inspecting", "epcList": [sgtin(KIT_GTIN, "K00001")],
    }
    doc["epcisBody"]["eventList"] = [inspected]
    result = _refused_whole(target, doc)
    assert [(e.index, e.code) for e in result.errors] == [(0, "epcis_unmapped")]
    assert "inspecting without a disposition" in result.errors[0].reason
    assert "None" not in result.errors[0].reason
