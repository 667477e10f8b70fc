"""The EPCIS 2.0 REST query subset: matches, time windows, and paging with opaque tokens."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from epcis import Epcis, QueryTooLarge
from epcis.dl import canonical_dl
from ledger.application import Ledger
from ledger.errors import InvalidInput, NotFound
from projections.base import ProjectionTimeout
from scripts import cli
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


def test_match_any_epc_finds_a_kits_whole_life_in_any_identifier_form(epcis: Epcis) -> None:
    doc = exported(epcis, blinded=True)
    kit = next(e for e in events(doc) if e.get("bizStep") == "dispensing")["epcList"][0]
    life = _all(epcis, {"MATCH_anyEPC": kit})
    steps = [e.get("bizStep") for e in life]
    assert steps[0] == "commissioning" and "packing" in steps and "dispensing" in steps
    assert _all(epcis, {"MATCH_anyEPC": canonical_dl(kit)}) == life
    # As the standard splits them: made by a transformation (its outputEPCList), then named in epcList or
    # childEPCs; the union is its whole life.
    made = _all(epcis, {"MATCH_outputEPC": kit})
    assert [e.get("bizStep") for e in made] == ["commissioning"]
    assert _all(epcis, {"MATCH_inputEPC": kit}) == []
    named = _all(epcis, {"MATCH_epc": kit})
    assert "commissioning" not in [e.get("bizStep") for e in named]
    assert sorted(e["eventID"] for e in made + named) == sorted(e["eventID"] for e in life)


def test_class_matches_tell_inputs_from_outputs(epcis: Epcis) -> None:
    doc = exported(epcis, blinded=True)
    made = next(e for e in events(doc) if e.get("bizStep") == "creating_class_instance")
    dp_lot = made["outputQuantityList"][0]["epcClass"]
    outputs = _all(epcis, {"MATCH_outputEPCClass": dp_lot})
    inputs = _all(epcis, {"MATCH_inputEPCClass": dp_lot})
    assert [e["eventID"] for e in outputs] == [made["eventID"]]
    assert {e.get("bizStep") for e in inputs} == {"commissioning"}
    anywhere = _all(epcis, {"MATCH_anyEPCClass": dp_lot})
    assert len(anywhere) >= len(outputs) + len(inputs) + 1  # + its QA release
    plain = _all(epcis, {"MATCH_epcClass": dp_lot})  # quantityList and childQuantityList only
    assert plain and not {e["eventID"] for e in plain} & {e["eventID"] for e in outputs + inputs}
    assert len(plain) + len(outputs) + len(inputs) == len(anywhere)


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


def test_event_ids_types_and_actions_pick_their_events(epcis: Epcis) -> None:
    whole = events(exported(epcis, blinded=True))
    packed = next(e for e in whole if e["type"] == "AggregationEvent")
    found = _all(epcis, {"EQ_eventID": packed["eventID"]})
    assert [e["eventID"] for e in found] == [packed["eventID"]]
    two = _all(epcis, {"EQ_eventID": [packed["eventID"], whole[0]["eventID"]]})
    assert {e["eventID"] for e in two} == {packed["eventID"], whole[0]["eventID"]}
    assert _all(epcis, {"EQ_eventID": "ni:///sha-256;00?ver=CBV2.0"}) == []

    aggregations = _all(epcis, {"eventType": "AggregationEvent"})
    assert aggregations and {e["type"] for e in aggregations} == {"AggregationEvent"}
    assert len(aggregations) == sum(e["type"] == "AggregationEvent" for e in whole)
    both = _all(epcis, {"eventType": "AggregationEvent,TransformationEvent"})
    assert len(both) == sum(e["type"] in ("AggregationEvent", "TransformationEvent") for e in whole)
    added = _all(epcis, {"EQ_action": "ADD"})
    assert added and all(e["action"] == "ADD" for e in added)
    assert len(added) == sum(e.get("action") == "ADD" for e in whole)
    with pytest.raises(InvalidInput, match="eventType 'Object' is not one of") as refused:
        epcis.query({"eventType": "Object"})
    assert refused.value.details["field"] == "eventType"
    with pytest.raises(InvalidInput, match="EQ_action 'add'"):
        epcis.query({"EQ_action": "add"})


def test_error_declarations_are_found_by_their_presence_and_reason(epcis: Epcis) -> None:
    whole = events(exported(epcis, blinded=True))
    declared = [e for e in whole if "errorDeclaration" in e]
    assert declared, "the demo corrects a receipt"
    found = _all(epcis, {"EXISTS_errorDeclaration": ""})
    assert [e["eventID"] for e in found] == [e["eventID"] for e in declared]
    forms = ("incorrect_data", "urn:epcglobal:cbv:er:incorrect_data", "https://ref.gs1.org/cbv/ER-incorrect_data")
    for reason in forms:
        assert _all(epcis, {"EQ_errorReason": reason}) == found
    assert _all(epcis, {"EQ_errorReason": "did_not_occur"}) == []
    # The declaration keeps the eventID of the event it declares wrong: both answer to it.
    same_id = _all(epcis, {"EQ_eventID": declared[0]["eventID"]})
    assert len(same_id) == 2 and sum("errorDeclaration" in e for e in same_id) == 1
    document = epcis.event(declared[0]["eventID"])
    assert document["epcisBody"]["queryResults"]["resultsBody"]["eventList"] == same_id


def test_order_by_event_time_or_record_time_in_either_direction_pages_through_all(epcis: Epcis) -> None:
    ledger_order = _all(epcis, {"perPage": "1000"})
    by_time = _all(epcis, {"orderBy": "eventTime", "orderDirection": "ASC", "perPage": "7"})
    stamps = [e["eventTime"] for e in by_time]
    assert sorted(e["eventID"] for e in by_time) == sorted(e["eventID"] for e in ledger_order)
    assert [_utc(t) for t in stamps] == sorted(_utc(t) for t in stamps)
    newest_first = _all(epcis, {"orderBy": "eventTime", "perPage": "7"})  # DESC unless asked otherwise
    assert [_utc(e["eventTime"]) for e in newest_first] == sorted((_utc(t) for t in stamps), reverse=True)
    assert _all(epcis, {"orderBy": "recordTime", "orderDirection": "ASC", "perPage": "9"}) == ledger_order
    assert _all(epcis, {"orderBy": "recordTime", "perPage": "9"}) == ledger_order[::-1]
    for bad in ({"orderBy": "bizStep"}, {"orderBy": "eventTime", "orderDirection": "UP"}):
        with pytest.raises(InvalidInput):
            epcis.query(bad)


def _utc(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_event_count_limit_cuts_the_answer_and_max_event_count_refuses_a_larger_one(epcis: Epcis) -> None:
    receipts = _all(epcis, {"EQ_bizStep": "receiving", "perPage": "1000"})
    assert len(receipts) > 5
    first_five = _all(epcis, {"EQ_bizStep": "receiving", "eventCountLimit": "5", "perPage": "2"})
    assert first_five == receipts[:5]
    _, token = epcis.query({"EQ_bizStep": "receiving", "eventCountLimit": "4", "perPage": "4"})
    assert token is None, "a page that ends the first eventCountLimit events has no next page"
    latest = _all(epcis, {"EQ_bizStep": "receiving", "eventCountLimit": "3", "orderBy": "recordTime"})
    assert latest == receipts[::-1][:3]
    assert _all(epcis, {"EQ_bizStep": "receiving", "maxEventCount": str(len(receipts))}) == receipts
    with pytest.raises(QueryTooLarge, match=f"more than maxEventCount={len(receipts) - 1}"):
        epcis.query({"EQ_bizStep": "receiving", "maxEventCount": str(len(receipts) - 1)})
    with pytest.raises(InvalidInput, match="cannot be given together"):
        epcis.query({"eventCountLimit": "1", "maxEventCount": "1"})
    for bad in ("0", "-1", "many"):
        with pytest.raises(InvalidInput, match="eventCountLimit is a whole number"):
            epcis.query({"eventCountLimit": bad})


def test_an_event_is_found_by_its_id_alone(epcis: Epcis) -> None:
    shipped = next(e for e in events(exported(epcis, blinded=True)) if e.get("bizStep") == "shipping")
    document = epcis.event(shipped["eventID"])
    assert document["type"] == "EPCISQueryDocument"
    assert document["epcisBody"]["queryResults"]["resultsBody"]["eventList"] == [shipped]
    with pytest.raises(NotFound, match="EPCIS event ni:///sha-256;ff"):
        epcis.event("ni:///sha-256;ff?ver=CBV2.0")


def test_a_followed_index_is_kept_by_a_worker_and_a_query_only_waits_for_it(database_url: str) -> None:
    ledger = Ledger.open(database_url)
    program = Program(ledger).reference()
    program.receive(gtin=API_GTIN, lot_number="API-1", kind="api", quantity="2 kg")
    head = ledger.chain.head()[0]
    followed = Epcis(ledger, database_url, followed=True, wait_seconds=0.3)
    following = None
    try:
        document, _ = followed.query({})
        assert document["epcisBody"]["queryResults"]["resultsBody"]["eventList"] == []
        assert followed.position() == 0, "a query never indexes events itself"
        with pytest.raises(ProjectionTimeout, match=f"not {head}"):
            followed.query({}, after=head)
        following = followed.start_following(poll_seconds=0.02)
        followed.wait_seconds = 10.0
        document, _ = followed.query({"EQ_bizStep": "receiving"}, after=head)
        assert len(document["epcisBody"]["queryResults"]["resultsBody"]["eventList"]) == 1
        assert followed.position() == head
    finally:
        if following is not None:
            following.close()
        followed.close()
        ledger.close()


def test_lotline_project_brings_the_epcis_index_up_to_date_and_rebuilds_it(
    epcis: Epcis, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    head = epcis.ledger.chain.head()[0]
    assert epcis.position() == 0
    assert cli.main(["project", "--database-url", database_url]) == 0
    assert f"epcis index: {head}" in capsys.readouterr().out.splitlines()
    assert epcis.position() == head
    everything = _all(epcis, {"perPage": "1000"})
    assert cli.main(["project", "--rebuild", "--database-url", database_url]) == 0
    assert epcis.position() == head and _all(epcis, {"perPage": "1000"}) == everything


def test_every_role_the_index_records_is_one_it_lists_by(epcis: Epcis) -> None:
    from epcis.query import MATCHES, _roles
    from projections.epcis_index import ROLES

    assert {r for _, roles in MATCHES for r in roles} == set(ROLES)
    recorded = {role for e in events(exported(epcis, blinded=True)) for role, _ in _roles(e)}
    assert recorded <= set(ROLES) and "read_point" in recorded and "output_epc" in recorded
