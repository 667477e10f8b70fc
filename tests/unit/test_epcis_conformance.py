"""What GS1's EPCIS 2.0 schema and JSON-LD context forbid is refused at capture, naming the event, the
JSON pointer and the rule, instead of being dropped silently (issue 16)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from epcis.capture import check
from tests.epcis_reference import load, schema_validator

Doc = dict[str, Any]


def official() -> Doc:
    """GS1's ObjectEvent with every field (ilmd, extensions in three declared prefixes, a -06:00 offset)."""
    return dict(load("examples", "valid", "object_event_all_possible_fields.jsonld"))


def event(doc: Doc) -> Doc:
    return dict(doc["epcisBody"]["eventList"][0])


def changed(change: Callable[[Doc, Doc], None]) -> Doc:
    doc = copy.deepcopy(official())
    change(doc, doc["epcisBody"]["eventList"][0])
    return doc


def refusals(doc: Doc) -> list[tuple[int | None, str | None, str]]:
    return [(e.index, e.pointer, e.reason) for e in check(doc) if e.code == "epcis_nonconforming"]


def test_the_official_examples_break_none_of_the_rules() -> None:
    assert refusals(official()) == []
    for name in ("Example_9.6.1-ObjectEvent.jsonld", "Example_9.6.4-TransformationEvent.jsonld",
                 "PersistentDisposition-example.jsonld", "SensorDataExample1.jsonld",
                 "ErrorDeclarationAndCorrectiveEvent.jsonld", "Example-TransactionEvents-2020_07_03y.jsonld"):
        assert refusals(load("examples", "valid", name)) == [], name


CASES: dict[str, tuple[Callable[[Doc, Doc], None], str, str, bool]] = {
    # name: (change, pointer, words of the rule, whether GS1's JSON schema refuses it too)
    "unprefixed ilmd key": (
        lambda d, e: e["ilmd"].update({"expiry": "2027-01-01"}),
        "/epcisBody/eventList/0/ilmd/expiry", "is not named by a URI", True),
    "undeclared prefix on an event field": (
        lambda d, e: e.update({"ex9:note": "x"}),
        "/epcisBody/eventList/0/ex9:note", "prefix 'ex9', which no @context declares", False),
    "undeclared prefix on an ilmd key": (
        lambda d, e: e["ilmd"].update({"ex9:lot": "A"}),
        "/epcisBody/eventList/0/ilmd/ex9:lot", "prefix 'ex9'", False),
    "offset contradicting the event time": (
        lambda d, e: e.update({"eventTime": "2005-04-05T02:33:31.116+02:00"}),
        "/epcisBody/eventList/0/eventTimeZoneOffset", "contradicts the offset +02:00", False),
    "empty @context": (
        lambda d, e: d.update({"@context": []}), "/@context", "does not name the EPCIS 2.0 context", False),
    "@context without the EPCIS context": (
        lambda d, e: d.update({"@context": [{"ext1": "http://example.com/ext1/"}]}),
        "/@context", "does not name the EPCIS 2.0 context", False),
    "CBV bizStep in URN form": (
        lambda d, e: e.update({"bizStep": "urn:epcglobal:cbv:bizstep:receiving"}),
        "/epcisBody/eventList/0/bizStep", "not the urn:epcglobal:cbv: form", True),
    "CBV source type in URN form": (
        lambda d, e: e["sourceList"][0].update({"type": "urn:epcglobal:cbv:sdt:owning_party"}),
        "/epcisBody/eventList/0/sourceList/0/type", "bare words or https://ref.gs1.org/cbv/", True),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_what_the_standard_forbids_is_refused_naming_the_pointer_and_the_rule(
    case: tuple[Callable[[Doc, Doc], None], str, str, bool],
) -> None:
    change, pointer, rule, schema_refuses = case
    doc = changed(change)
    found = refusals(doc)
    if pointer != "/@context":  # without the context, its prefixes are undeclared too: named as well
        assert len(found) == 1, found
    index, where, reason = found[0]
    assert where == pointer and rule in reason
    assert index == (None if pointer == "/@context" else 0)
    if schema_refuses:  # the rule is GS1's own: its JSON schema refuses the same document
        assert list(schema_validator().iter_errors(doc)), "GS1's schema accepts it"


def test_an_eventtime_in_utc_may_carry_any_local_offset() -> None:
    local = {"eventTime": "2005-04-05T08:33:31Z", "eventTimeZoneOffset": "+05:30"}
    doc = changed(lambda d, e: e.update(local))
    assert refusals(doc) == []
    same = changed(lambda d, e: e.update({"eventTime": "2005-04-04T20:33:31.116-06:00"}))
    assert refusals(same) == []


def test_every_breach_is_named_not_only_the_first() -> None:
    def two(d: Doc, e: Doc) -> None:
        e["ilmd"]["expiry"] = "2027-01-01"
        e["disposition"] = "urn:epcglobal:cbv:disp:in_progress"

    pointers = [p for _, p, _ in refusals(changed(two))]
    assert pointers == ["/epcisBody/eventList/0/ilmd/expiry", "/epcisBody/eventList/0/disposition"]
