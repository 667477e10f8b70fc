"""The EPCIS 2.0 REST query subset: matches, time windows, and paging with opaque tokens."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from epcis import Epcis
from epcis.dl import canonical_dl
from ledger.application import Ledger
from ledger.errors import InvalidInput
from tests.builders import API_GTIN, EXCIPIENT_GTIN, Program
from tests.integration.epcis_helpers import demo, events, exported


@pytest.fixture
def epcis(database_url: str) -> Iterator[Epcis]:
    ledger = Ledger.open(database_url)
    demo(ledger)
    found = Epcis(ledger, database_url)
    yield found
    found.close()
    ledger.close()


def _all(epcis: Epcis, params: dict[str, Any]) -> list[dict[str, Any]]:
    found, token = [], None
    while True:
        doc, token = epcis.query({**params, **({"nextPageToken": token} if token else {})})
        assert doc["type"] == "EPCISQueryDocument"
        found += doc["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        if token is None:
            return found


def test_paging_returns_every_match_once_in_ledger_order(epcis: Epcis) -> None:
    whole = [e for e in events(exported(epcis, blinded=True)) if e.get("bizStep") == "receiving"]
    paged = _all(epcis, {"EQ_bizStep": "receiving", "perPage": "7"})
    assert [e["eventID"] for e in paged] == [e["eventID"] for e in whole]
    first, token = epcis.query({"EQ_bizStep": "receiving", "perPage": "7"})
    assert token is not None and len(first["epcisBody"]["queryResults"]["resultsBody"]["eventList"]) == 7


def test_a_page_token_works_only_for_its_own_query(epcis: Epcis) -> None:
    _, token = epcis.query({"EQ_bizStep": "receiving", "perPage": "2"})
    with pytest.raises(InvalidInput, match="other parameters"):
        epcis.query({"EQ_bizStep": "shipping", "perPage": "2", "nextPageToken": token})
    with pytest.raises(InvalidInput, match="not one this server issued"):
        epcis.query({"nextPageToken": "not-a-token"})
    with pytest.raises(InvalidInput, match="not supported"):
        epcis.query({"MATCH_somethingElse": "x"})


def test_match_epc_finds_a_kits_whole_life_in_any_identifier_form(epcis: Epcis) -> None:
    doc = exported(epcis, blinded=True)
    kit = next(e for e in events(doc) if e.get("bizStep") == "dispensing")["epcList"][0]
    steps = [e.get("bizStep") for e in _all(epcis, {"MATCH_epc": kit})]
    assert steps[0] == "commissioning" and "packing" in steps and "dispensing" in steps
    assert _all(epcis, {"MATCH_epc": canonical_dl(kit)}) == _all(epcis, {"MATCH_epc": kit})


def test_class_matches_tell_inputs_from_outputs(epcis: Epcis) -> None:
    doc = exported(epcis, blinded=True)
    made = next(e for e in events(doc) if e.get("bizStep") == "creating_class_instance")
    dp_lot = made["outputQuantityList"][0]["epcClass"]
    outputs = _all(epcis, {"MATCH_outputEPCClass": dp_lot})
    inputs = _all(epcis, {"MATCH_inputEPCClass": dp_lot})
    assert [e["eventID"] for e in outputs] == [made["eventID"]]
    assert {e.get("bizStep") for e in inputs} == {"commissioning"}
    assert len(_all(epcis, {"MATCH_epcClass": dp_lot})) >= len(outputs) + len(inputs) + 1  # + its QA release


def test_parent_id_biz_location_disposition_and_time_window(epcis: Epcis) -> None:
    doc = exported(epcis, blinded=True)
    packing = next(e for e in events(doc) if e["type"] == "AggregationEvent")
    parents = _all(epcis, {"MATCH_parentID": packing["parentID"]})
    assert [e["eventID"] for e in parents] == [packing["eventID"]]
    assert len(_all(epcis, {"MATCH_anyEPC": packing["parentID"]})) == 2  # packed, then shipped
    site = next(e for e in events(doc) if e.get("bizStep") == "dispensing")["bizLocation"]["id"]
    at_site = _all(epcis, {"EQ_bizLocation": site, "EQ_disposition": "dispensed"})
    assert at_site and all(e["bizLocation"]["id"] == site for e in at_site)
    times = sorted(e["eventTime"] for e in events(doc))
    middle = times[len(times) // 2]
    early = _all(epcis, {"LT_eventTime": middle})
    late = _all(epcis, {"GE_eventTime": middle})
    assert len(early) + len(late) == len(times)
    assert all(e["eventTime"] < middle for e in early)


def test_a_step_recorded_while_the_index_catches_up_is_indexed_once(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = Ledger.open(database_url)
    program = Program(ledger).reference()
    program.receive(gtin=API_GTIN, lot_number="API-1", kind="api", quantity="2 kg")
    epcis = Epcis(ledger, database_url)
    chain = type(ledger.chain)
    head = chain.head

    def head_then_a_receipt(self: Any) -> Any:
        found = head(self)
        monkeypatch.setattr(chain, "head", head)
        # Another writer records a step after the index read the head, before it read the chain.
        program.receive(gtin=EXCIPIENT_GTIN, lot_number="EXC-1", kind="excipient", quantity="10 kg")
        return found

    monkeypatch.setattr(chain, "head", head_then_a_receipt)
    try:
        first = _all(epcis, {"EQ_bizStep": "receiving"})  # the index as of the head it read
        again = _all(epcis, {"EQ_bizStep": "receiving"})  # the receipt recorded meanwhile, once
        assert [e["ilmd"]["cbvmda:lotNumber"] for e in first] == ["API-1"]
        assert [e["ilmd"]["cbvmda:lotNumber"] for e in again] == ["API-1", "EXC-1"]
    finally:
        epcis.close()
        ledger.close()
