"""The demo program exported as EPCIS 2.0, checked against GS1's schema, captured into an empty Lotline."""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import select

from epcis import CaptureTooLarge, Epcis
from epcis.capture import captured, sender_ids
from epcis.eventhash import document_hash_ids
from epcis.models import EPCISDocument
from ledger.application import Ledger
from ledger.domain import Shipment
from ledger.verify import verify_chain
from projections import genealogy as gen
from projections.epcis_index import event_table as index_event
from projections.runner import ProjectionRunner
from tests.epcis_reference import schema_validator
from tests.integration.epcis_helpers import ALL_ROLES, demo, events, exported, plain, rehashed, second_url  # noqa: F401
from tests.integration.rawdb import RawStore

capture_module = sys.modules["epcis.capture"]  # `epcis.capture` the name is the function

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


def test_exported_events_carry_nothing_of_the_store_that_holds_them(source: Any) -> None:
    ledger, epcis = source
    doc = exported(epcis, blinded=True)
    text = json.dumps(doc)
    assert "lotline:source" not in text and ledger.chain.head()[1].hex() not in text
    # The link back to the ledger is the index's: each event's step, where its proof is.
    shipped = next(e for e in events(doc) if "lotline:shipmentNumber" in e and e["bizStep"] == "shipping")
    page = epcis.event_page(shipped["eventID"])
    assert [e["eventID"] for e in page.events] == [shipped["eventID"]]
    (seq,) = page.seqs
    row = next(r for r in ledger.chain.iter_chain() if r.seq == seq)
    shipment = ledger.repository.get(UUID(str(row.originator_id)))
    assert isinstance(shipment, Shipment) and shipment.shipment_number == shipped["lotline:shipmentNumber"]


def test_export_capture_export_gives_the_same_event_ids_and_documents(source: Any, target: Any) -> None:
    _, epcis = source
    _, into = target
    for blinded in (False, True):
        sent = exported(epcis, blinded=False)
        if not blinded:
            assert into.capture(sent, ALL_ROLES).accepted
        before, after = exported(epcis, blinded=blinded), exported(into, blinded=blinded)
        assert [e["eventID"] for e in events(after)] == [e["eventID"] for e in events(before)], blinded
        assert [_bar_record_time(e) for e in events(after)] == [_bar_record_time(e) for e in events(before)]
        assert after["epcisHeader"] == before["epcisHeader"]
        assert document_hash_ids(after) == [e["eventID"] for e in events(after)]
    corrected = [
        c for e in events(after) for c in e.get("errorDeclaration", {}).get("correctiveEventIDs", ())
    ]
    assert corrected and set(corrected) <= {e["eventID"] for e in events(after)}


def _bar_record_time(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != "recordTime"}


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


ACME = "https://acme.example/voc/"


def test_a_partners_event_keeps_its_id_time_zone_and_extensions(source: Any, target: Any) -> None:
    _, epcis = source
    ledger, into = target
    sent = exported(epcis, blinded=False)
    sent["@context"] = [*sent["@context"], {"acme": ACME}]
    listed = events(sent)
    dispensed = next(e for e in listed if e.get("bizStep") == "dispensing")
    dispensed["eventID"] = "urn:uuid:6f1c0b5e-8f3a-4b2e-9a44-3c1d2e5f7a10"
    at = datetime.fromisoformat(dispensed["eventTime"].replace("Z", "+00:00"))
    dispensed["eventTime"] = at.astimezone(timezone(timedelta(hours=2))).isoformat()
    dispensed["eventTimeZoneOffset"] = "+02:00"
    dispensed["acme:inspection"] = {"acme:by": "QA-7", "acme:score": 9.5}
    del dispensed["lotline:actor"]
    # standard fields whose entries the ledger does not hold, kept as sent (members in any order)
    dispensed["sourceList"] = [{"source": "urn:epc:id:pgln:9520001.11111", "type": "owning_party"}]
    order = "urn:epcglobal:cbv:bt:9520011111116:A1"
    dispensed["bizTransactionList"] = [{"type": "po", "bizTransaction": order}]
    dispensed["persistentDisposition"] = {"set": ["completeness_inferred"]}
    declared = {e["eventID"] for e in listed if "errorDeclaration" in e}
    received = next(e for e in listed if "ilmd" in e and e["eventID"] not in declared)
    received["ilmd"]["acme:origin"] = "DE"
    at_receipt = listed.index(received)
    received["eventID"] = document_hash_ids(sent)[at_receipt]  # its hash under the partner's @context

    wrong = copy.deepcopy(sent)
    events(wrong)[5]["eventID"] = "ni:///sha-256;" + "ab" * 32 + "?ver=CBV2.0"
    refused = into.capture(wrong, ALL_ROLES)
    assert not refused.accepted and ledger.chain.head()[0] == 0
    (error,) = refused.errors
    assert error.index == 5 and error.pointer == "/epcisBody/eventList/5/eventID"
    assert "not this event's" in error.reason and document_hash_ids(wrong)[5] in error.reason

    # what Lotline could not give back is refused, not dropped: a member inside a place, an error
    # declared for another reason than incorrect data
    outside = copy.deepcopy(sent)
    at_dispensed = listed.index(dispensed)
    events(outside)[at_dispensed]["readPoint"]["acme:shelf"] = "B2"
    at_declared = next(i for i, e in enumerate(listed) if "errorDeclaration" in e)
    events(outside)[at_declared]["errorDeclaration"]["reason"] = "did_not_occur"
    refused = into.capture(outside, ALL_ROLES)
    assert not refused.accepted and ledger.chain.head()[0] == 0
    assert sorted((e.index, e.code, e.pointer) for e in refused.errors) == sorted([
        (at_dispensed, "epcis_not_kept", f"/epcisBody/eventList/{at_dispensed}/readPoint/acme:shelf"),
        (at_declared, "epcis_not_kept", f"/epcisBody/eventList/{at_declared}/errorDeclaration/reason"),
    ])

    assert into.capture(sent, ALL_ROLES).accepted
    for blinded in (False, True):
        again_listed = events(exported(into, blinded=blinded))
        if not blinded:  # every event comes back with the ID it was sent with
            assert [e["eventID"] for e in again_listed] == [e["eventID"] for e in listed]
        back = {e["eventID"]: e for e in again_listed}
        again = back[dispensed["eventID"]]
        # the partner's event as it was sent, its extension's names written as absolute URIs
        ours = {k: v for k, v in again.items() if not k.startswith(ACME)}
        theirs = {k: v for k, v in dispensed.items() if not k.startswith("acme:")}
        assert _bar_record_time(ours) == _bar_record_time(theirs)
        assert again["eventTimeZoneOffset"] == "+02:00"
        assert datetime.fromisoformat(again["eventTime"]) == at
        assert again[ACME + "inspection"] == {ACME + "by": "QA-7", ACME + "score": 9.5}
        assert "lotline:actor" not in again
        assert back[received["eventID"]]["ilmd"][ACME + "origin"] == "DE"
    found = into.event(dispensed["eventID"])
    assert [e["eventID"] for e in found["epcisBody"]["queryResults"]["resultsBody"]["eventList"]] == [
        dispensed["eventID"]
    ]


def test_what_is_kept_of_a_captured_event_is_inside_the_hash_chain(
    source: Any,
    target: Any,
    second_url: str,  # noqa: F811
) -> None:
    _, epcis = source
    ledger, into = target
    assert into.capture(exported(epcis, blinded=False), ALL_ROLES).accepted
    assert verify_chain(ledger.chain).ok
    raw = RawStore(second_url, ledger.chain.events_table_name)
    try:
        row = next(
            r
            for r in ledger.chain.iter_chain()
            if b"captured_from" in raw.event(r.originator_id, r.originator_version)[1]
        )
        topic, state = raw.event(row.originator_id, row.originator_version)
        stored = json.loads(state)
        kept = stored["audit"]["captured_from"][0]
        assert kept["eventID"].startswith("ni:///sha-256;") and len(kept["match"]) == 16
        kept["eventID"] = "urn:uuid:00000000-0000-4000-8000-000000000000"  # an edited partner ID
        raw.disable_triggers()
        raw.set_event(row.originator_id, row.originator_version, topic, json.dumps(stored).encode())
    finally:
        raw.close()
    report = verify_chain(ledger.chain)
    assert not report.ok and report.failure is not None and report.failure.seq == row.seq


def test_an_event_time_in_any_rfc_3339_form_is_given_back_and_indexed(source: Any, target: Any) -> None:
    """`2025-06-14t07:30:03.426552z` is RFC 3339: kept as sent, it must not stop the EPCIS index."""
    _, epcis = source
    ledger, into = target
    sent = exported(epcis, blinded=False)
    at = next(n for n, e in enumerate(events(sent)) if e.get("bizStep") == "dispensing")
    event = sent["epcisBody"]["eventList"][at]
    event["eventTime"] = event["eventTime"].replace("Z", "z").replace("T", "t")
    event["eventID"] = "urn:uuid:6f1c0b5e-8f3a-4b2e-9a44-3c1d2e5f7a11"
    assert into.capture(sent, ALL_ROLES).accepted
    assert into.indexer.sync() == ledger.chain.head()[0]  # every step indexed
    found = into.event(event["eventID"])["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    assert [e["eventTime"] for e in found] == [event["eventTime"]]


def test_more_of_an_event_than_lotline_keeps_is_refused(source: Any, target: Any) -> None:
    """What is kept as sent is stored with every ledger event of its step: its size is bounded."""
    _, epcis = source
    ledger, into = target
    sent = exported(epcis, blinded=False)
    sent["@context"] = [*sent["@context"], {"acme": ACME}]
    at = next(n for n, e in enumerate(events(sent)) if e.get("bizStep") == "dispensing")
    sent["epcisBody"]["eventList"][at]["acme:trace"] = "7.1," * 3000
    rehashed(sent, at)
    refused = into.capture(sent, ALL_ROLES)
    assert not refused.accepted and ledger.chain.head()[0] == 0
    assert [(e.index, e.code, e.pointer) for e in refused.errors] == [
        (at, "epcis_not_kept", f"/epcisBody/eventList/{at}")
    ]


def test_an_event_id_names_one_event(source: Any, target: Any) -> None:
    """A sender's own eventID (not a hash) already held by another event is refused, in the document
    or in the store; a resend of the same event is not another event."""
    _, epcis = source
    _, into = target
    sent = exported(epcis, blinded=False)
    listed = events(sent)
    dispensed = [n for n, e in enumerate(listed) if e.get("bizStep") == "dispensing"][:2]
    own = "urn:uuid:6f1c0b5e-8f3a-4b2e-9a44-3c1d2e5f7a12"
    twice = copy.deepcopy(sent)
    for n in dispensed:
        twice["epcisBody"]["eventList"][n]["eventID"] = own
    refused = into.capture(twice, ALL_ROLES)
    assert [(e.index, e.code) for e in refused.errors] == [(dispensed[1], "epcis_duplicate_event_id")]
    sent["epcisBody"]["eventList"][dispensed[0]]["eventID"] = own
    assert into.capture(sent, ALL_ROLES).accepted
    into.indexer.sync()
    assert into.capture(sent, ALL_ROLES).duplicates == len(listed)  # a resend: nothing new
    other = copy.deepcopy(sent)
    another = {**listed[dispensed[1]], "eventID": own, "lotline:subject": "S-9999"}  # another event
    other["epcisBody"]["eventList"].append(another)
    refused = into.capture(other, ALL_ROLES)
    assert [(e.index, e.code, e.pointer) for e in refused.errors] == [
        (len(listed), "epcis_duplicate_event_id", f"/epcisBody/eventList/{len(listed)}/eventID")
    ]


def _dispensing(sent: dict[str, Any]) -> list[int]:
    return [n for n, e in enumerate(events(sent)) if e.get("bizStep") == "dispensing"]


def test_an_event_id_is_taken_the_moment_its_capture_is_written(source: Any, target: Any) -> None:
    """The sender's eventIDs are written with the events, not found later in the EPCIS index: a second
    event with the same ID is refused at once, with no projection worker having run."""
    _, epcis = source
    ledger, into = target
    sent = exported(epcis, blinded=False)
    listed = events(sent)
    first, second = _dispensing(sent)[:2]
    own = "urn:uuid:6f1c0b5e-8f3a-4b2e-9a44-3c1d2e5f7a13"
    sent["epcisBody"]["eventList"][first]["eventID"] = own
    assert into.capture(sent, ALL_ROLES).accepted
    with into.engine.connect() as conn:
        held = conn.execute(select(sender_ids.c.event_id, sender_ids.c.event_hash)).all()
        position = conn.execute(select(captured.c.seq).where(captured.c.event_hash == sent_hash(sent, first)))
        at = position.scalar_one()
    assert held == [(own, sent_hash(sent, first))]
    head = ledger.chain.head()[0]
    other = copy.deepcopy(sent)
    other["epcisBody"]["eventList"].append({**listed[second], "eventID": own, "lotline:subject": "S-9998"})
    refused = into.capture(other, ALL_ROLES)  # the EPCIS index has not been synced: not what found it
    assert [(e.index, e.code) for e in refused.errors] == [(len(listed), "epcis_duplicate_event_id")]
    assert ledger.chain.head()[0] == head
    into.indexer.sync()
    with into.engine.connect() as conn:  # the index places an event at its step's first ledger event
        indexed = conn.execute(select(index_event.c.seq).where(index_event.c.event_id == own)).scalar_one()
    assert at == indexed


def sent_hash(sent: dict[str, Any], n: int) -> str:
    return document_hash_ids(sent)[n]


def test_what_a_capture_answers_to_is_written_with_its_events(
    source: Any, target: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The captured hash IDs go in the events' own transaction (they were written after it, and a crash
    between the two let a resend record the document again): a row already stored refuses the whole
    write, and the capture, looking again, finds it."""
    _, epcis = source
    ledger, into = target
    sent = exported(epcis, blinded=False)
    first = document_hash_ids(sent)[0]
    with into.engine.begin() as conn:  # another capture of the first event, written a moment ago
        conn.execute(captured.insert().values(event_hash=first, seq=None, principal="qa", captured_at="now"))
    real, heads = capture_module._captured, []

    def not_yet(engine: Any, keys: Any) -> set[str]:
        heads.append(ledger.chain.head()[0])
        return set() if len(heads) == 1 else real(engine, keys)  # the first look came before that write

    monkeypatch.setattr(capture_module, "_captured", not_yet)
    again = into.capture(sent, ALL_ROLES)
    assert heads == [0, 0]  # the first attempt's events were refused with its rows: nothing written
    # ... and looked again (the stored row is now seen): its first event is known as captured, so the
    # later ones that need it are refused, and still nothing is written.
    assert not again.accepted and ledger.chain.head()[0] == 0


def test_two_captures_racing_for_one_event_id_write_one(
    source: Any, target: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two different events named with one eventID, in captures that both looked before either wrote:
    the second write is refused whole by the first one's row, and looked at again its ID is taken."""
    _, epcis = source
    ledger, into = target
    sent = exported(epcis, blinded=False)
    first, second = _dispensing(sent)[:2]
    own = "urn:uuid:6f1c0b5e-8f3a-4b2e-9a44-3c1d2e5f7a14"
    sent["epcisBody"]["eventList"][first]["eventID"] = own
    before = copy.deepcopy(sent)
    before["epcisBody"]["eventList"] = events(sent)[:second]  # up to the second dispensing, not it
    assert into.capture(before, ALL_ROLES).accepted
    head = ledger.chain.head()[0]
    later = copy.deepcopy(sent)
    later["epcisBody"]["eventList"] = events(sent)[: second + 1]
    later["epcisBody"]["eventList"][second]["eventID"] = own  # a step the ledger takes, with a taken ID
    real, calls = capture_module._taken_ids, []

    def not_yet(*args: Any) -> list[Any]:
        calls.append(ledger.chain.head()[0])
        return [] if len(calls) == 1 else real(*args)  # the first look came before the other's write

    monkeypatch.setattr(capture_module, "_taken_ids", not_yet)
    refused = into.capture(later, ALL_ROLES)
    assert calls == [head, head]  # written and refused whole by the stored row, then looked at again
    assert [(e.index, e.code) for e in refused.errors] == [(second, "epcis_duplicate_event_id")]
    assert ledger.chain.head()[0] == head


def test_an_event_id_longer_than_lotline_keeps_is_refused(source: Any, target: Any) -> None:
    _, epcis = source
    ledger, into = target
    sent = exported(epcis, blinded=False)
    at = _dispensing(sent)[0]
    sent["epcisBody"]["eventList"][at]["eventID"] = "urn:example:" + "x" * 200
    refused = into.capture(sent, ALL_ROLES)
    assert not refused.accepted and ledger.chain.head()[0] == 0
    assert [(e.index, e.code, e.pointer) for e in refused.errors] == [
        (at, "epcis_not_kept", f"/epcisBody/eventList/{at}/eventID")
    ]
