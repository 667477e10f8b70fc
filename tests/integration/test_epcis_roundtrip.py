"""The demo program exported as EPCIS 2.0, checked against GS1's schema, captured into an empty Lotline."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from epcis import CaptureTooLarge, Epcis
from epcis.eventhash import document_hash_ids
from epcis.models import EPCISDocument
from ledger.application import Ledger
from projections import genealogy as gen
from projections.runner import ProjectionRunner
from tests.epcis_reference import schema_validator
from tests.integration.epcis_helpers import ALL_ROLES, demo, events, exported, plain, second_url  # noqa: F401

pytestmark = pytest.mark.slow


@pytest.fixture
def source(database_url: str) -> Iterator[tuple[Ledger, Epcis]]:
    ledger = Ledger.open(database_url)
    demo(ledger)
    epcis = Epcis(ledger, database_url)
    yield ledger, epcis
    epcis.close()
    ledger.close()


@pytest.fixture
def target(second_url: str) -> Iterator[tuple[Ledger, Epcis]]:  # noqa: F811
    ledger = Ledger.open(second_url)
    epcis = Epcis(ledger, second_url)
    yield ledger, epcis
    epcis.close()
    ledger.close()


def test_the_exported_program_is_valid_epcis_2_with_reproducible_event_hashes(source: Any) -> None:
    _, epcis = source
    for blinded in (True, False):
        doc = exported(epcis, blinded=blinded)
        errors = [e.message for e in schema_validator().iter_errors(doc)]
        assert errors == []
        EPCISDocument.model_validate(doc)
        assert document_hash_ids(doc) == [e["eventID"] for e in events(doc)]
        kinds = {(e["type"], e.get("bizStep")) for e in events(doc)}
        assert ("TransformationEvent", "creating_class_instance") in kinds
        assert ("TransformationEvent", "commissioning") in kinds
        assert ("AggregationEvent", "packing") in kinds
        assert any("errorDeclaration" in e for e in events(doc))
        assert any("sensorElementList" in e for e in events(doc))


def test_every_exported_event_links_back_to_its_ledger_event(source: Any) -> None:
    ledger, epcis = source
    doc = exported(epcis, blinded=True)
    rows = {row.seq: row for row in ledger.chain.iter_chain()}
    for e in events(doc):
        link = e["lotline:source"]
        row = rows[link["seq"]]
        assert (row.originator_id, row.originator_version) == (link["stream"], link["version"])
        assert row.chain_hash.hex() == link["chainHash"]
        assert link["proof"] == f"/inspector/proofs/{link['seq']}"


def test_a_blinded_export_never_carries_the_allocation(source: Any) -> None:
    _, epcis = source
    text = "".join(epcis.events_between(None, None, blinded=True))
    assert "lotline:allocation" not in text and "lotline:arms" not in text and '"treatment"' not in text
    for e in events(json.loads(text)):
        if e["type"] == "TransformationEvent" and e.get("outputEPCList"):
            assert e["outputEPCList"] == sorted(e["outputEPCList"])  # kit order says nothing of the arms
    unblinded = "".join(epcis.events_between(None, None, blinded=False))
    assert "lotline:allocation" in unblinded


def test_a_blinded_document_cannot_create_kits(source: Any, target: Any) -> None:
    _, epcis = source
    ledger, into = target
    result = into.capture(exported(epcis, blinded=True), ALL_ROLES)
    assert not result.accepted
    assert any("kit list" in e.reason for e in result.errors)
    assert ledger.chain.head()[0] == 0


def test_captured_into_an_empty_lotline_the_program_answers_genealogy_and_recall_alike(
    source: Any,
    target: Any,
    database_url: str,
    second_url: str,  # noqa: F811
) -> None:
    _, epcis = source
    ledger, into = target
    doc = exported(epcis, blinded=False)
    result = into.capture(doc, ALL_ROLES)
    assert result.accepted, result.errors[:5]
    assert result.recorded == len(events(doc)) and result.duplicates == 0
    before = ledger.chain.head()
    again = into.capture(doc, ALL_ROLES)
    assert again.accepted and again.recorded == 0 and again.duplicates == len(events(doc))
    assert ledger.chain.head() == before, "a resent document recorded something"
    a, b = ProjectionRunner.open(database_url), ProjectionRunner.open(second_url)
    try:
        a.catch_up()
        b.catch_up()
        with a.engine.connect() as conn:
            lots = list(conn.execute(select(gen.lot.c.lot_id)).scalars())
            kits = list(conn.execute(select(gen.kit.c.kit_id)).scalars())
        assert len(lots) == 16 and len(kits) == 75
        for lot in lots:
            for unblinded in (False, True):
                assert plain(a.genealogy.forward_from_lot(lot, unblinded=unblinded)) == plain(
                    b.genealogy.forward_from_lot(lot, unblinded=unblinded)
                )
            assert plain(a.genealogy.backward_from_lot(lot)) == plain(b.genealogy.backward_from_lot(lot))
            assert plain(a.recall.impact([lot])) == plain(b.recall.impact([lot]))
        for kit in kits:
            for unblinded in (False, True):
                assert plain(a.genealogy.backward_from_kit(kit, unblinded=unblinded)) == plain(
                    b.genealogy.backward_from_kit(kit, unblinded=unblinded)
                )
    finally:
        a.close()
        b.close()


def test_a_trace_holds_everything_upstream_and_downstream_of_a_lot(source: Any) -> None:
    _, epcis = source
    doc = exported(epcis, blinded=True)
    dp = next(e for e in events(doc) if e.get("bizStep") == "creating_class_instance")
    dp_lot = dp["outputQuantityList"][0]["epcClass"]
    trace = json.loads("".join(epcis.trace(dp_lot)))
    assert schema_validator().is_valid(trace)
    steps = [(e["type"], e.get("bizStep")) for e in events(trace)]
    assert steps[0] == ("ObjectEvent", "receiving")  # its API and excipients arriving, upstream
    assert ("TransformationEvent", "creating_class_instance") in steps
    assert ("TransformationEvent", "commissioning") in steps  # the kits made from it, downstream
    assert ("ObjectEvent", "dispensing") in steps
    packaged = [e for e in events(trace) if e.get("bizStep") == "commissioning"]
    full = [e for e in events(doc) if e.get("bizStep") == "commissioning"]
    assert {len(e["outputEPCList"]) for e in packaged} <= {len(e["outputEPCList"]) for e in full}
    kit = packaged[0]["outputEPCList"][0]
    kit_trace = json.loads("".join(epcis.trace(kit)))
    assert any(e.get("bizStep") == "creating_class_instance" for e in events(kit_trace))


def test_a_query_document_is_captured_as_the_document_of_its_events(source: Any, target: Any) -> None:
    _, epcis = source
    _, into = target
    doc = exported(epcis, blinded=False)
    answer = {
        "@context": doc["@context"],
        "type": "EPCISQueryDocument",
        "schemaVersion": "2.0",
        "creationDate": doc["creationDate"],
        "epcisBody": {
            "queryResults": {"queryName": "SimpleEventQuery", "resultsBody": {"eventList": events(doc)}}
        },
    }
    assert schema_validator().is_valid(answer)
    # A query document carries no master data: the places and trial it names are captured first.
    master_data = {**doc, "epcisBody": {"eventList": []}}
    assert into.capture(master_data, ALL_ROLES).accepted
    result = into.capture(answer, ALL_ROLES)
    assert result.accepted, result.errors[:5]
    assert result.recorded == len(events(doc))
    assert list(result.event_ids) == [e["eventID"] for e in events(doc)]
    assert into.capture(doc, ALL_ROLES).duplicates == len(events(doc)), "the same events, captured once"
    # A refusal names the event where the query document holds it.
    broken = copy.deepcopy(answer)
    listed = broken["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    listed[3]["bizStep"] = "urn:epcglobal:cbv:bizstep:receiving"
    refused = into.capture(broken, ALL_ROLES)
    assert not refused.accepted
    assert refused.errors[0].pointer == "/epcisBody/queryResults/resultsBody/eventList/3/bizStep"
    too_many = f"holds {len(events(doc))} events; one capture takes at most 10:"
    with pytest.raises(CaptureTooLarge, match=too_many):
        into.capture(doc, ALL_ROLES, limit=10)
