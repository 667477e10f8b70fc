"""The GS1 event hash: every expected hash ID of the reference implementation, reproduced."""

from __future__ import annotations

import copy

import pytest

from epcis.dl import canonical_dl
from epcis.eventhash import document_hash_ids, event_hash_id, pre_hash
from tests.epcis_reference import load, reference


def _hash_cases() -> list[str]:
    folder = reference() / "examples" / "hash-reference"
    names = sorted(p.stem for p in folder.glob("*.jsonld") if p.with_suffix(".hashes").exists())
    assert len(names) >= 19
    return names


def test_every_expected_hash_of_the_reference_implementation_is_reproduced() -> None:
    checked = 0
    for name in _hash_cases():
        document = load("examples", "hash-reference", f"{name}.jsonld")
        expected = (reference() / "examples" / "hash-reference" / f"{name}.hashes").read_text().split()
        assert document_hash_ids(document) == expected, name
        checked += len(expected)
    assert checked == 37


def test_error_declaration_record_time_and_event_id_do_not_change_the_hash() -> None:
    document = load("examples", "hash-reference", "epcisDocWithSingleEvent.jsonld")
    event = document["epcisBody"]["eventList"][0]
    declared = copy.deepcopy(event)
    declared["recordTime"] = "2030-01-01T00:00:00Z"
    declared["eventID"] = "urn:uuid:00000000-0000-0000-0000-000000000000"
    declared["errorDeclaration"] = {"declarationTime": "2030-01-01T00:00:00Z", "reason": "incorrect_data"}
    assert event_hash_id(declared, document["@context"]) == event_hash_id(event, document["@context"])


def test_the_order_of_a_json_objects_members_does_not_change_the_hash() -> None:
    """An event kept as JSON text and read back may list `source` before `type`: the same event."""
    document = load("examples", "hash-reference", "epcisDocWithShippingAndTransportingEvent.jsonld")
    expected = document_hash_ids(document)
    reordered = copy.deepcopy(document)
    lists = ("sourceList", "destinationList", "bizTransactionList")
    entries = [x for e in reordered["epcisBody"]["eventList"] for name in lists for x in e.get(name, [])]
    assert any(next(iter(x)) == "type" for x in entries)
    for entry in entries:
        items = list(entry.items())
        entry.clear()
        entry.update(reversed(items))
    assert document_hash_ids(reordered) == expected


def test_a_changed_epc_changes_the_hash() -> None:
    document = load("examples", "hash-reference", "epcisDocWithSingleEvent.jsonld")
    event = copy.deepcopy(document["epcisBody"]["eventList"][0])
    before = event_hash_id(event, document["@context"])
    event["eventTime"] = "2000-01-01T00:00:00.000Z"
    assert event_hash_id(event, document["@context"]) != before


def test_times_are_hashed_in_utc_at_millisecond_precision() -> None:
    event = {
        "type": "ObjectEvent",
        "eventTime": "2020-01-01T12:00:00.1234+02:00",
        "eventTimeZoneOffset": "+02:00",
        "action": "OBSERVE",
        "epcList": [],
    }
    assert pre_hash(event).startswith("eventType=ObjectEventeventTime=2020-01-01T10:00:00.123Z")


@pytest.mark.parametrize(
    ("uri", "canonical"),
    [
        ("urn:epc:id:sgtin:4069999.000050.K000001", "https://id.gs1.org/01/04069999000503/21/K000001"),
        (
            "urn:epc:class:lgtin:4069999.000040.LTX10-0001",
            "https://id.gs1.org/01/04069999000404/10/LTX10-0001",
        ),
        ("urn:epc:id:sscc:4069999.0000000001", "https://id.gs1.org/00/040699990000000015"),
        ("urn:epc:id:sgln:4069999.00001.0", "https://id.gs1.org/414/4069999000015"),
        (
            "https://example.com/01/04069999000502/21/K000001?x=1",
            "https://id.gs1.org/01/04069999000502/21/K000001",
        ),
        ("urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427", None),
    ],
)
def test_gs1_keys_are_hashed_as_canonical_digital_links(uri: str, canonical: str | None) -> None:
    assert canonical_dl(uri) == canonical
