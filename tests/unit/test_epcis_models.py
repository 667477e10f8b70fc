"""Lotline's EPCIS 2.0 models: GS1's official examples read, and the strict rules refuse what they should."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from epcis import check
from epcis.capture import Planner
from epcis.eventhash import document_hash_ids
from epcis.ids import lgtin, parse, sgln, sgtin, sscc
from epcis.models import EPCISDocument, validation_problems
from ledger.gs1 import with_check_digit
from tests.epcis_reference import load, reference

KIT_GTIN = with_check_digit("0406999900005")


def _official(folder: str) -> list[str]:
    return sorted(p.name for p in (reference() / "examples" / folder).glob("*.jsonld"))


def _event(**changes: Any) -> dict[str, Any]:
    event = {
        "type": "ObjectEvent",
        "eventTime": "2024-05-01T10:00:00Z",
        "eventTimeZoneOffset": "+00:00",
        "action": "OBSERVE",
        "bizStep": "dispensing",
        "disposition": "dispensed",
        "epcList": [sgtin(KIT_GTIN, "K000001")],
    }
    event.update(changes)
    return {k: v for k, v in event.items() if v is not None}


def _document(*events: dict[str, Any]) -> dict[str, Any]:
    return {
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2024-05-01T10:00:00Z",
        "epcisBody": {"eventList": list(events)},
    }


def _problems(doc: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as info:
        EPCISDocument.model_validate(doc)
    return validation_problems(info.value)


def test_every_official_epcis_document_example_is_read() -> None:
    names = [n for n in _official("valid") if n != "EPCISQueryDocument.jsonld"]
    assert len(names) == 15
    for name in names:
        EPCISDocument.model_validate(load("examples", "valid", name))


def test_the_official_example_gs1s_schema_refuses_is_refused_too() -> None:
    problems = _problems(load("examples", "official-rejected", "SensorDataExample8.jsonld"))
    assert problems[0]["index"] == 0 and "bizRules" in problems[0]["reason"]


def test_a_time_without_zone_is_refused_with_the_event_index() -> None:
    problems = _problems(_document(_event(), _event(eventTime="2024-05-01T10:00:00")))
    assert [p["index"] for p in problems] == [1]
    assert problems[0]["path"] == "eventTime"


def test_an_event_without_its_time_zone_offset_is_refused() -> None:
    problems = _problems(_document(_event(eventTimeZoneOffset=None)))
    assert problems[0]["path"] == "eventTimeZoneOffset"


@pytest.mark.parametrize(
    "step",
    [
        "transforming",
        "urn:epcglobal:cbv:bizstep:transforming",
        "https://ref.gs1.org/cbv/BizStep-quarantining",
    ],
)
def test_a_biz_step_that_is_not_a_cbv_word_is_refused(step: str) -> None:
    problems = _problems(_document(_event(bizStep=step)))
    assert "bizStep" in problems[0]["path"]


@pytest.mark.parametrize(
    "disposition",
    [
        "in_progress",
        "https://ref.gs1.org/cbv/Disp-in_progress",
        "urn:epcglobal:cbv:disp:in_progress",
        "https://lotline.dev/voc/Disp-missing",
    ],
)
def test_cbv_words_in_any_form_and_extension_uris_are_accepted(disposition: str) -> None:
    EPCISDocument.model_validate(_document(_event(disposition=disposition)))


def test_a_gs1_key_with_a_wrong_check_digit_is_refused() -> None:
    wrong = KIT_GTIN[:-1] + str((int(KIT_GTIN[-1]) + 1) % 10)
    problems = _problems(_document(_event(epcList=[f"https://id.gs1.org/01/{wrong}/21/K1"])))
    assert "check digit" in problems[0]["reason"]


def test_a_malformed_epc_uri_is_refused() -> None:
    problems = _problems(_document(_event(epcList=["urn:epc:id:sgtin:4069999.00005.K1"])))
    assert "not a well-formed GS1 identifier" in problems[0]["reason"]


def test_extension_fields_must_be_named_by_a_uri() -> None:
    problems = _problems(_document(_event(subject="SUBJ-1")))
    assert "subject" in problems[0]["reason"]
    EPCISDocument.model_validate(_document(_event(**{"lotline:subject": "SUBJ-1"})))


def test_ilmd_only_with_action_add() -> None:
    problems = _problems(_document(_event(ilmd={"cbvmda:lotNumber": "L1"})))
    assert "ilmd" in problems[0]["reason"]


def test_identifiers_round_trip_between_epc_uris_and_digital_links() -> None:
    gln = with_check_digit("406999900001")
    shipper = with_check_digit("04069999000000001")
    assert parse(sgtin(KIT_GTIN, "K/1")).serial == "K/1"  # "/" is escaped in the URI, and read back
    assert parse(lgtin(KIT_GTIN, "PK-0001")).kind == "lgtin"
    assert parse(sscc(shipper)).key == shipper
    assert parse(sgln(gln)).key == gln
    assert parse(f"https://id.gs1.org/01/{KIT_GTIN}/21/K1").gtin == KIT_GTIN
    assert parse("https://example.org/things/1") is None


def test_official_examples_lotline_cannot_map_are_refused_with_a_reason_per_event() -> None:
    """Lotline maps the events whose step it records and whose data it needs is there."""
    mappable = {}
    for name in _official("valid"):
        doc = load("examples", "valid", name)
        errors = check(doc)
        events = len(doc.get("epcisBody", {}).get("eventList", []))
        refused = {e.index for e in errors}
        mappable[name] = [i for i in range(events) if i not in refused]
        assert all(e.reason for e in errors), name
    # A site's receipt of serialised items maps as it is (the shipment from its desadv number, or,
    # without one, the shipment the items travel in); nothing else in GS1's examples carries what
    # Lotline's steps need (e.g. a lot's expiry and kind, a second-person check, a kit list). A lot
    # observed received at a place (GS1's 9.6.2) maps as the receipt of a lot transferred there.
    receipts = {
        "PersistentDisposition-example.jsonld": [0],
        "Example_9.6.2-ObjectEvent.jsonld": [0],
        "Example_9.6.1-ObjectEvent.jsonld": [1],
        "Example_9.6.1-ObjectEventWithDigitalLink.jsonld": [1],
        "Example_9.6.1-ObjectEvent-with-error-declaration.jsonld": [1],
    }
    assert {k: v for k, v in mappable.items() if v} == receipts
    reasons = {e.reason for e in check(load("examples", "valid", "AssociationEvent-a.jsonld"))}
    assert reasons == {"Lotline records no step for a AssociationEvent"}
    assert any(
        "kit list" in e.reason
        for e in check(load("examples", "valid", "Example_9.6.4-TransformationEvent.jsonld"))
    )
    # A query document's events are checked as a document's: the shipment is refused with its index
    # and reason; the receipt after it maps, as 9.6.1's does.
    answer = load("examples", "valid", "EPCISQueryDocument.jsonld")
    listed = answer["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    assert [e.get("bizStep") for e in listed] == ["shipping", "receiving"]
    assert [(e.index, e.code) for e in check(answer)] == [(0, "epcis_unmapped")]


def test_document_level_copy_is_not_changed_by_validation() -> None:
    doc = _document(_event())
    before = copy.deepcopy(doc)
    EPCISDocument.model_validate(doc)
    assert doc == before


def test_a_lot_received_at_the_same_time_as_kits_is_a_step_of_its_own() -> None:
    """A site's kit receipt without a shipment number groups the receiving events of that time; a
    lot's receipt (an LGTIN quantity, no EPCs) that follows is planned as the transfer's receipt."""
    place = {"id": sgln(with_check_digit("400000000002"))}
    kits = _event(bizStep="receiving", disposition="in_progress", bizLocation=place)
    lot = _event(
        bizStep="receiving",
        disposition="in_progress",
        bizLocation=place,
        epcList=None,
        quantityList=[{"epcClass": lgtin(with_check_digit("0400000000030"), "DP-1")}],
    )
    doc = _document(kits, lot)
    steps, errors = Planner(EPCISDocument.model_validate(doc), document_hash_ids(doc)).plan()
    assert errors == []
    assert [(s.action, s.indices) for s in steps] == [("confirm a receipt", [0]), ("receive a lot", [1])]
