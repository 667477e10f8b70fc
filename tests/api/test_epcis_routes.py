"""The EPCIS 2.0 routes: streamed exports with the version headers, blinded unless the role may unblind;
capture over HTTP into an empty Lotline, all or nothing and each event once; the paged query."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import groupby
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from api import permissions
from epcis.dl import canonical_dl
from epcis.ids import lgtin, sgln, sgtin
from ledger.domain import Kit, KitStatus
from ledger.values import PLACE_BOUND, Role
from tests.api.conftest import PASSWORD, PLACES, USERS, Api, start_api
from tests.builders import API_GTIN, BY_ADMIN, DP_GTIN, FR_SITE_GLN, KIT_GTIN, Program
from tests.epcis_reference import load, schema_validator
from tests.integration.epcis_helpers import rehashed, second_url, site_document, site_event  # noqa: F401

DP_LOT = lgtin(DP_GTIN, "DP-1")
KIT = sgtin(KIT_GTIN, "K00001")
REAUTH = {"Lotline-Signature-Password": PASSWORD}
READERS = sorted(permissions.TRACE, key=str)
PRINCIPAL = {role: next(p for p, (r, _) in USERS.items() if r == role) for role in READERS}


def document(response: Any) -> dict[str, Any]:
    """The EPCIS document of a 200 answer, after checking its media type and version headers."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/ld+json")
    assert response.headers["GS1-EPCIS-Version"] == "2.0.0"
    assert response.headers["GS1-CBV-Version"] == "2.0.0"
    return dict(response.json())


def event_list(doc: dict[str, Any]) -> list[dict[str, Any]]:
    body = doc["epcisBody"]
    return list(
        body["eventList"] if "eventList" in body else body["queryResults"]["resultsBody"]["eventList"]
    )


def capture(api: Api, principal: str, doc: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    if principal not in api.tokens:  # a place-bound user of the target, once its places are captured
        role, name = USERS[principal]
        api.add_user(principal, role, name, PLACES.get(principal, ()))
    return api.post(principal, "/epcis/capture", doc, headers=REAUTH if headers is None else headers)


def by_actor(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The document as a partner's systems would send it: first its master data alone (admin), then one
    document per run of consecutive events of one person, sent by that person."""
    header_only = {**doc, "epcisBody": {"eventList": []}}
    parts = [("admin1", header_only)]
    runs = groupby(event_list(doc), key=lambda e: e["lotline:actor"]["principal"])
    for principal, events in runs:
        parts.append((principal, {**doc, "epcisHeader": {}, "epcisBody": {"eventList": list(events)}}))
    return parts


@pytest.fixture
def target(database_url: str, second_url: str, tmp_path: Path) -> Iterator[Api]:  # noqa: F811
    """A second Lotline on an empty store of the same kind, with no events and the same users but for
    site users; those bound to places (depot, manufacturing) are added by `capture` once their places
    are registered there."""
    (tmp_path / "target").mkdir()
    for other in start_api(second_url, tmp_path / "target"):
        for principal, (role, name) in USERS.items():
            if role not in PLACE_BOUND:
                other.add_user(principal, role, name)
        yield other


# --- export ---------------------------------------------------------------------------------------------


def test_a_lot_trace_is_valid_epcis_2_with_the_version_headers(api: Api) -> None:
    doc = document(api.get("qa1", "/epcis/trace", params={"epc": DP_LOT}))
    assert [e.message for e in schema_validator().iter_errors(doc)] == []
    steps = [(e["type"], e.get("bizStep")) for e in event_list(doc)]
    assert ("ObjectEvent", "receiving") in steps  # the API lot arriving, upstream
    assert ("TransformationEvent", "creating_class_instance") in steps
    assert ("TransformationEvent", "commissioning") in steps  # the kits made from it, downstream
    kit_doc = document(api.get("depot1", "/epcis/trace", params={"epc": KIT}))
    assert schema_validator().is_valid(kit_doc)
    assert any(e.get("bizStep") == "creating_class_instance" for e in event_list(kit_doc))


def test_a_packaging_run_is_traced_by_the_lgtin_it_is_exported_with(api: Api) -> None:
    run = lgtin(KIT_GTIN, "P-1")  # the kits' GTIN and the run's batch number, as the export names it
    doc = document(api.get("qa1", "/epcis/trace", params={"epc": run}))
    assert schema_validator().is_valid(doc)
    steps = [e.get("bizStep") for e in event_list(doc)]
    assert "commissioning" in steps and "creating_class_instance" in steps  # the run, and upstream
    named = [q.get("epcClass") for e in event_list(doc) for q in e.get("quantityList", [])]
    assert run in named  # its release steps name it by that LGTIN
    unknown = api.get("qa1", "/epcis/trace", params={"epc": lgtin(KIT_GTIN, "P-404")})
    assert unknown.status_code == 404


@pytest.mark.parametrize("role", READERS, ids=str)
def test_exports_are_blinded_unless_the_role_may_unblind_and_asks(api: Api, role: Role) -> None:
    who = PRINCIPAL[role]
    for path, params in (("/epcis/trace", {"epc": DP_LOT}), ("/epcis/events/export", {})):
        assert "lotline:allocation" not in api.get(who, path, params=params).text
        unblinded = api.get(who, path, params={**params, "unblinded": "true"})
        if role in permissions.UNBLINDED:
            assert document(unblinded) and "lotline:allocation" in unblinded.text
        else:
            assert unblinded.status_code == 403, unblinded.text
            assert unblinded.json()["code"] == "forbidden"


def test_site_users_get_no_epcis_export_or_query(api: Api) -> None:
    for path, params in (
        ("/epcis/trace", {"epc": KIT}),
        ("/epcis/events/export", {}),
        ("/epcis/events", {}),
    ):
        response = api.get("site1", path, params=params)
        assert response.status_code == 403, (path, response.text)
        assert response.json()["code"] == "forbidden"


def test_a_time_range_export_holds_only_the_events_of_the_range(api: Api) -> None:
    everything = event_list(document(api.get("insp1", "/epcis/events/export")))
    times = sorted(e["eventTime"] for e in everything)
    middle = times[len(times) // 2]
    later = document(api.get("insp1", "/epcis/events/export", params={"from": middle}))
    assert schema_validator().is_valid(later)
    assert event_list(later) and all(e["eventTime"] >= middle for e in event_list(later))
    assert len(event_list(later)) < len(everything)
    naive = api.get("insp1", "/epcis/events/export", params={"to": "2030-01-01T00:00:00"})
    assert naive.status_code == 400 and naive.json()["field"] == "query.to"


def test_tracing_an_unknown_lot_or_a_non_lot_answers_404_or_400(api: Api) -> None:
    unknown = api.get("qa1", "/epcis/trace", params={"epc": lgtin(DP_GTIN, "NOPE-9")})
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
    bad = api.get("qa1", "/epcis/trace", params={"epc": "urn:epc:id:sscc:4000000.0000000001"})
    assert bad.status_code == 400 and bad.json()["field"] == "epc"


# --- capture ------------------------------------------------------------------------------------------


def test_a_program_exported_from_one_lotline_is_captured_into_an_empty_one_over_http(
    api: Api, target: Api
) -> None:
    source = document(api.get("insp1", "/epcis/events/export", params={"unblinded": "true"}))
    parts = by_actor(source)
    assert {p for p, _ in parts} == {"admin1", "depot1", "mfg1", "qa1", "qp1"}
    jobs = []
    for principal, part in parts:
        response = capture(target, principal, part)
        assert response.status_code == 202, response.text
        assert response.headers["GS1-EPCIS-Version"] == "2.0.0"
        assert response.json()["recorded"] == len(event_list(part))
        # a finished capture job, asked for again at its Location by whoever captured it
        job = target.get(principal, response.headers["Location"]).json()
        assert job == response.json()
        assert (job["running"], job["success"], job["createdBy"]) == (False, True, principal)
        jobs.append((principal, job["captureID"]))
    # each person's own jobs, newest first; another's is not found (its errors are the capturer's)
    mine = [capture_id for who, capture_id in jobs if who == "mfg1"][::-1]
    assert len(mine) >= 3
    listed = target.get("mfg1", "/epcis/capture", params={"perPage": 2})
    assert [j["captureID"] for j in listed.json()] == mine[:2]
    following = target.get("mfg1", listed.links["next"]["url"])
    assert [j["captureID"] for j in following.json()] == mine[2:4]
    other = next(capture_id for who, capture_id in jobs if who != "mfg1")
    assert target.get("mfg1", f"/epcis/capture/{other}").status_code == 404
    # the same steps, read back from the target: every event, in the same order, as the same EPCIS event
    copied = document(target.get("insp1", "/epcis/events/export", params={"unblinded": "true"}))
    assert [_comparable(e) for e in event_list(copied)] == [_comparable(e) for e in event_list(source)]
    # resending records nothing
    head = target.head()
    for principal, part in parts:
        again = capture(target, principal, part)
        assert again.status_code == 202, again.text
        assert again.json()["recorded"] == 0 and again.json()["duplicates"] == len(event_list(part))
    assert target.head() == head, "a resent document recorded something"


def test_over_consumption_refuses_the_whole_document_with_the_event_index_and_reason(
    api: Api, target: Api
) -> None:
    source = document(api.get("insp1", "/epcis/events/export", params={"unblinded": "true"}))
    parts = by_actor(source)
    at = next(n for n, (_, part) in enumerate(parts) if _formulation(part) is not None)
    for principal, part in parts[:at]:
        assert capture(target, principal, part).status_code == 202
    principal, part = parts[at]
    bad = copy.deepcopy(part)
    index = _formulation(bad)
    assert index is not None
    drawn = next(
        q for q in event_list(bad)[index]["inputQuantityList"] if q["epcClass"] == lgtin(API_GTIN, "API-1")
    )
    drawn["quantity"] = float(Decimal(str(drawn["quantity"])) * 1000)
    rehashed(bad, index)
    head = target.head()
    refused = capture(target, principal, bad)
    assert refused.status_code == 400, refused.text
    body = refused.json()
    assert body["code"] == "epcis_refused" and body["accepted"] is False and body["recorded"] == 0
    assert [(e["index"], e["code"]) for e in body["errors"]] == [(index, "insufficient_quantity")]
    assert body["errors"][0]["eventID"] == body["eventIDs"][index]
    assert target.head() == head, "a refused document recorded something"
    job = target.get(principal, refused.headers["Location"]).json()
    assert job["success"] is False and job["errors"] == body["errors"]
    assert capture(target, principal, part).status_code == 202  # the good document still goes in whole
    for unknown in ("0" * 32, "not-a-job", "%00"):
        missing = target.get("qa1", f"/epcis/capture/{unknown}")
        assert missing.status_code == 404 and missing.json()["code"] == "not_found", unknown
    assert api.get("insp1", "/epcis/capture").status_code == 403  # captures nothing, has no jobs


def test_capture_needs_a_capturing_role_and_the_users_re_authentication(api: Api) -> None:
    doc = {**document(api.get("qa1", "/epcis/events/export")), "epcisBody": {"eventList": []}}
    head = api.head()
    for who in ("recall1", "insp1"):
        refused = capture(api, who, doc)
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden", who
    for headers in ({}, {"Lotline-Signature-Password": "wrong"}):
        refused = capture(api, "qa1", doc, headers=headers)
        assert refused.status_code == 403 and refused.json()["code"] == "signature_not_verified"
    bearer = {"Lotline-Signature-Token": api.tokens["qa1"]}
    assert capture(api, "qa1", doc, headers=bearer).json()["code"] == "signature_not_verified"
    assert api.head() == head
    fresh = {"Lotline-Signature-Token": api.identity.issue_token("qa1", **BY_ADMIN)}
    head = api.head()  # the token's issue was recorded; the capture of known master data records nothing
    assert capture(api, "qa1", doc, headers=fresh).status_code == 202
    assert api.head() == head


def test_capture_refuses_what_is_not_an_epcis_document_naming_why(api: Api) -> None:
    headers = {**api.auth("mfg1"), **REAUTH, "Content-Type": "application/json"}
    for body, code in ((b"{not json", "invalid_json"), (b'{"type": "EPCISDocument"}', "invalid_epcis")):
        refused = api.client.post("/epcis/capture", content=body, headers=headers)
        assert refused.status_code == 400, refused.text
        assert refused.json()["errors"][0]["code"] == code and refused.json()["errors"][0]["index"] is None
    latin = api.client.post("/epcis/capture", content=b'{"x": "\xe9"}', headers=headers)
    assert latin.status_code == 400 and latin.json()["field"] == "body"


def test_epcis_routes_need_a_token(api: Api) -> None:
    for method, path in (
        ("GET", "/epcis/trace?epc=x"),
        ("GET", "/epcis/events/export"),
        ("GET", "/epcis/events"),
        ("POST", "/epcis/capture"),
    ):
        response = api.client.request(method, path)
        assert response.status_code == 401, (path, response.text)
        assert response.json()["code"] == "invalid_credentials"


# --- query ---------------------------------------------------------------------------------------------


def test_query_pages_follow_the_link_to_the_end_and_return_every_match_once(api: Api) -> None:
    everything = event_list(document(api.get("depot1", "/epcis/events", params={"perPage": 1000})))
    assert len(everything) > 5
    seen: list[str] = []
    url: str | None = "/epcis/events?perPage=2"
    while url is not None:
        response = api.get("depot1", url)
        page = event_list(document(response))
        assert 0 < len(page) <= 2
        seen += [e["eventID"] for e in page]
        url = _next(response)
    assert seen == [e["eventID"] for e in everything]
    kit_events = event_list(document(api.get("depot1", "/epcis/events", params={"MATCH_anyEPC": KIT})))
    assert kit_events and all(KIT in e.get("outputEPCList", []) + e.get("epcList", []) for e in kit_events)
    commissioning = document(api.get("qp1", "/epcis/events", params={"EQ_bizStep": "commissioning"}))
    assert [e["type"] for e in event_list(commissioning)] == ["TransformationEvent"]


def test_query_filters_combine_and_times_bound_the_answer(api: Api, program: Program) -> None:
    soon = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    none = api.get("qa1", "/epcis/events", params={"GE_eventTime": soon})
    assert event_list(document(none)) == []
    formulated = api.get(
        "qa1",
        "/epcis/events",
        params={"MATCH_inputEPCClass": lgtin(API_GTIN, "API-1"), "MATCH_outputEPCClass": DP_LOT},
    )
    assert [e["bizStep"] for e in event_list(document(formulated))] == ["creating_class_instance"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"perPage": "0"}, "query.perPage"),
        ({"perPage": "many"}, "query.perPage"),
        ({"MATCH_foo": "x"}, "MATCH_foo"),
        ({"GE_eventTime": "yesterday"}, "GE_eventTime"),
        ({"LT_eventTime": "2030-01-01T00:00:00"}, "LT_eventTime"),
        ({"nextPageToken": "not-a-token"}, "nextPageToken"),
        ({"orderBy": "bizStep"}, "query.orderBy"),
        ({"orderBy": "eventTime", "orderDirection": "up"}, "query.orderDirection"),
        ({"eventType": "Event"}, "eventType"),
        ({"EQ_action": "MOVE"}, "EQ_action"),
        ({"eventCountLimit": "0"}, "query.eventCountLimit"),
        ({"eventCountLimit": "2", "maxEventCount": "2"}, "maxEventCount"),
    ],
)
def test_a_bad_query_parameter_is_refused_naming_it(api: Api, params: dict[str, str], field: str) -> None:
    response = api.get("qa1", "/epcis/events", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field


def test_a_page_token_is_refused_with_other_parameters(api: Api) -> None:
    first = api.get("qa1", "/epcis/events", params={"perPage": 1})
    token = first.links["next"]["url"].split("nextPageToken=")[1]
    other = api.get(
        "qa1", "/epcis/events", params={"perPage": 1, "EQ_bizStep": "receiving", "nextPageToken": token}
    )
    assert other.status_code == 400 and other.json()["field"] == "nextPageToken"


def _next(response: Any) -> str | None:
    link = response.links.get("next")
    return None if link is None else str(link["url"])


def _formulation(doc: dict[str, Any]) -> int | None:
    found = [n for n, e in enumerate(event_list(doc)) if e.get("bizStep") == "creating_class_instance"]
    return found[0] if found else None


def _comparable(event: dict[str, Any]) -> str:
    """An event without the time it was recorded in one store."""
    same = {k: v for k, v in event.items() if k != "recordTime"}
    return json.dumps(same, sort_keys=True)


def test_a_client_asking_for_another_epcis_version_is_told_406(api: Api) -> None:
    path = "/epcis/events/export"
    for asked in ("1.2", "1.2.0", "3.0"):
        answer = api.client.get(path, headers={**api.auth("qa1"), "GS1-EPCIS-Version": asked})
        assert answer.status_code == 406, asked
        body = answer.json()
        assert body["code"] == "epcis_version_not_supported" and body["supported"] == ["2.0.0"]
    for asked in ("2.0", "2.0.0"):
        answer = api.client.get(path, headers={**api.auth("qa1"), "GS1-EPCIS-Version": asked})
        assert answer.status_code == 200 and answer.headers["GS1-EPCIS-Version"] == "2.0.0"
    assert api.client.get(path, headers=api.auth("qa1")).status_code == 200  # none asked: 2.0
    documented = api.client.get("/openapi.json").json()["paths"][path]["get"]["responses"]
    assert "406" in documented


def test_an_event_is_read_by_its_event_id_in_the_path(api: Api) -> None:
    everything = event_list(document(api.get("qa1", "/epcis/events", params={"perPage": 1000})))
    shipped = next(e for e in everything if e.get("bizStep") == "shipping")
    answer = api.get("qa1", f"/epcis/events/{quote(shipped['eventID'], safe='')}")
    found = document(answer)
    assert found["type"] == "EPCISQueryDocument" and event_list(found) == [shipped]
    # where the ledger step it comes from is proven: its proof bundle, one link per step
    links = answer.headers["Link"].split(", ")
    (proof,) = [link for link in links if 'rel="https://lotline.dev/voc/proof"' in link]
    seq = int(proof.split(">")[0].rsplit("/", 1)[1])
    assert 1 <= seq <= api.head()[0]
    bundle = api.get("insp1", proof.split(">")[0].lstrip("<"))
    # no log key in this store, so no checkpoint covers it yet: the route says so of that very event
    assert bundle.status_code == 409 and bundle.json()["seq"] == seq, bundle.text
    unknown = api.get("qa1", f"/epcis/events/{quote('ni:///sha-256;00?ver=CBV2.0', safe='')}")
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
    assert api.get("site1", f"/epcis/events/{quote(shipped['eventID'], safe='')}").status_code == 403
    same = event_list(document(api.get("qa1", "/epcis/events", params={"EQ_eventID": shipped["eventID"]})))
    assert same == [shipped]


def test_a_query_larger_than_its_max_event_count_is_413_and_a_count_limit_cuts_it(api: Api) -> None:
    everything = event_list(document(api.get("qa1", "/epcis/events", params={"perPage": 1000})))
    too_many = api.get("qa1", "/epcis/events", params={"maxEventCount": len(everything) - 1})
    assert too_many.status_code == 413 and too_many.json()["code"] == "query_too_large"
    assert too_many.json()["maxEventCount"] == len(everything) - 1
    all_of_them = api.get("qa1", "/epcis/events", params={"maxEventCount": len(everything), "perPage": 1000})
    assert event_list(document(all_of_them)) == everything
    newest = api.get("qa1", "/epcis/events", params={"eventCountLimit": 3, "orderBy": "recordTime"})
    assert event_list(document(newest)) == everything[::-1][:3] and _next(newest) is None
    kind = (everything[-1]["type"], everything[-1]["action"])
    params = {"eventType": kind[0], "EQ_action": kind[1], "perPage": 1000}
    alike = api.get("qa1", "/epcis/events", params=params)
    assert event_list(document(alike)) == [e for e in everything if (e["type"], e.get("action")) == kind]


# --- top-level resources, discovery, negotiation ------------------------------------------------------------


def collection_of(response: Any) -> list[str]:
    body = document(response)
    assert body["type"] == "Collection"
    return list(body["member"])


def test_the_top_level_resources_list_what_the_events_hold(api: Api) -> None:
    assert collection_of(api.get("qa1", "/epcis")) == [
        "queries", "capture", "events", "eventTypes", "epcs", "bizSteps", "bizLocations", "readPoints",
        "dispositions",
    ]
    everything = event_list(document(api.get("qa1", "/epcis/events", params={"perPage": 1000})))
    assert "ObjectEvent" in collection_of(api.get("qa1", "/epcis/eventTypes"))
    steps = collection_of(api.get("qa1", "/epcis/bizSteps"))
    assert steps == sorted({e["bizStep"] for e in everything if "bizStep" in e})
    dispositions = collection_of(api.get("qa1", "/epcis/dispositions"))
    assert dispositions == sorted({e["disposition"] for e in everything if "disposition" in e})
    locations = collection_of(api.get("qa1", "/epcis/bizLocations"))
    assert len(locations) == len({e["bizLocation"]["id"] for e in everything if "bizLocation" in e})
    points = collection_of(api.get("qa1", "/epcis/readPoints"))
    assert len(points) == len({e["readPoint"]["id"] for e in everything if "readPoint" in e}) > 0
    epcs = collection_of(api.get("qa1", "/epcis/epcs", params={"perPage": 1000}))
    assert canonical_dl(KIT) in epcs and epcs == sorted(epcs)
    # Paged in order, each value once, the next page in the Link header.
    seen: list[str] = []
    url: str | None = "/epcis/epcs?perPage=3"
    while url is not None:
        response = api.get("qa1", url)
        seen += collection_of(response)
        url = _next(response)
    assert seen == epcs
    assert api.get("qa1", "/epcis/places").status_code == 404
    assert api.get("site1", "/epcis/bizSteps").status_code == 403


def test_the_events_of_one_value_are_those_the_query_finds(api: Api) -> None:
    everything = event_list(document(api.get("qa1", "/epcis/events", params={"perPage": 1000})))
    shipped = next(e for e in everything if e.get("bizStep") == "shipping")
    step_events = event_list(document(api.get("qa1", "/epcis/bizSteps/shipping/events")))
    assert step_events == [e for e in everything if e.get("bizStep") == "shipping"]
    point = shipped["readPoint"]["id"]
    by_point = event_list(document(api.get("qa1", f"/epcis/readPoints/{quote(point, safe='')}/events")))
    assert by_point and all(canonical_dl(e["readPoint"]["id"]) == canonical_dl(point) for e in by_point)
    asked = api.get("qa1", "/epcis/events", params={"EQ_readPoint": canonical_dl(point)})
    queried = event_list(document(asked))
    assert queried == by_point
    kit_events = event_list(document(api.get("qa1", f"/epcis/epcs/{quote(KIT, safe='')}/events")))
    assert kit_events == event_list(document(api.get("qa1", "/epcis/events", params={"MATCH_anyEPC": KIT})))
    typed = api.get("qa1", "/epcis/eventTypes/ObjectEvent/events", params={"EQ_bizStep": "shipping"})
    assert event_list(document(typed)) == [e for e in step_events if e["type"] == "ObjectEvent"]
    assert collection_of(api.get("qa1", "/epcis/bizSteps/shipping")) == ["events"]
    assert collection_of(api.get("qa1", "/epcis/eventTypes/ObjectEvent")) == ["events"]
    for unknown in ("/epcis/bizSteps/levitating", "/epcis/eventTypes/MagicEvent", "/epcis/places/x/events"):
        answer = api.get("qa1", unknown)
        assert answer.status_code == 404 and answer.json()["code"] == "not_found", unknown


def test_options_says_what_each_resource_allows_and_how_the_server_speaks(api: Api) -> None:
    for path, allowed in (
        ("/epcis", "GET, OPTIONS"),
        ("/epcis/events", "GET, OPTIONS"),
        ("/epcis/capture", "GET, OPTIONS, POST"),
        ("/epcis/capture/0123", "GET, OPTIONS"),
        ("/epcis/bizSteps/shipping/events", "GET, OPTIONS"),
    ):
        answer = api.client.options(path, headers=api.auth("qa1"))
        assert answer.status_code == 204, (path, answer.text)
        assert answer.headers["Allow"] == allowed
        assert answer.headers["GS1-EPCIS-Version"] == "2.0.0" and answer.headers["GS1-CBV-Max"] == "2.0.0"
        assert answer.headers["GS1-EPC-Format"] == "Always_EPC_URN"
    capture_limit = api.client.options("/epcis/capture", headers=api.auth("qa1")).headers
    assert int(capture_limit["GS1-EPCIS-Capture-File-Size-Limit"]) == 1024 * 1024
    assert api.client.options("/epcis/places", headers=api.auth("qa1")).status_code == 404
    assert api.client.options("/epcis").status_code == 401


def test_version_and_format_headers_that_exclude_what_the_server_speaks_are_406(api: Api) -> None:
    for header, asked in (("GS1-EPCIS-Min", "2.1"), ("GS1-EPCIS-Max", "1.2"), ("GS1-CBV-Min", "3.0.0"),
                          ("GS1-CBV-Max", "1.2.0"), ("GS1-EPC-Format", "Always_GS1_Digital_Link")):
        answer = api.client.get("/epcis/events", headers={**api.auth("qa1"), header: asked})
        assert answer.status_code == 406, (header, asked)
        body = answer.json()
        assert (body["code"], body["header"], body["asked"]) == ("epcis_version_not_supported", header, asked)
    for header, asked in (("GS1-EPCIS-Min", "1.2"), ("GS1-EPCIS-Max", "2.0"), ("GS1-CBV-Min", "2.0.0"),
                          ("GS1-EPC-Format", "No_Preference"), ("GS1-EPC-Format", "Always_EPC_URN")):
        answer = api.client.get("/epcis/events", headers={**api.auth("qa1"), header: asked})
        assert answer.status_code == 200, (header, asked, answer.text)
    bad = api.client.get("/epcis/events", headers={**api.auth("qa1"), "GS1-CBV-Min": "two"})
    assert bad.status_code == 400 and bad.json()["field"] == "GS1-CBV-Min"


def test_capture_refuses_what_the_standard_forbids_with_the_pointer_and_records_nothing(api: Api) -> None:
    doc = copy.deepcopy(load("examples", "valid", "object_event_all_possible_fields.jsonld"))
    doc["epcisBody"]["eventList"][0]["ilmd"]["expiry"] = "2027-01-01"
    doc["epcisBody"]["eventList"][0]["bizStep"] = "urn:epcglobal:cbv:bizstep:receiving"
    before = api.head()
    refused = capture(api, "qa1", doc)
    assert refused.status_code == 400, refused.text
    body = refused.json()
    assert body["code"] == "epcis_refused" and body["recorded"] == 0
    assert [(e["index"], e["code"], e["pointer"]) for e in body["errors"]] == [
        (0, "epcis_nonconforming", "/epcisBody/eventList/0/ilmd/expiry"),
        (0, "epcis_nonconforming", "/epcisBody/eventList/0/bizStep"),
    ]
    assert api.head() == before
    # A schema error the models find is named by its pointer too.
    malformed = copy.deepcopy(load("examples", "valid", "Example_9.6.1-ObjectEvent.jsonld"))
    malformed["epcisBody"]["eventList"][1]["eventTimeZoneOffset"] = "+25:00"
    answer = capture(api, "qa1", malformed).json()
    assert answer["errors"][0]["pointer"] == "/epcisBody/eventList/1/eventTimeZoneOffset", answer


def test_capture_is_all_or_nothing_and_says_so_and_takes_at_most_its_capture_limit(api: Api) -> None:
    doc = load("examples", "valid", "Example_9.6.1-ObjectEvent.jsonld")
    asked = capture(api, "qa1", doc, headers={**REAUTH, "GS1-Capture-Error-Behaviour": "proceed"})
    assert asked.status_code == 406, asked.text
    refusal = asked.json()
    assert (refusal["code"], refusal["supported"]) == ("capture_error_behaviour_not_supported", ["rollback"])
    answered = capture(api, "qa1", doc, headers={**REAUTH, "GS1-Capture-Error-Behaviour": "rollback"})
    assert answered.status_code == 400  # not a Lotline program: refused whole, with the headers
    assert answered.headers["GS1-Capture-Error-Behaviour"] == "rollback"
    assert answered.headers["GS1-EPCIS-Capture-Limit"] == "5000"
    settings = api.client.app.state.settings  # type: ignore[attr-defined]
    events = len(doc["epcisBody"]["eventList"])
    settings.epcis_capture_limit = events - 1
    try:
        before = api.head()
        too_many = capture(api, "qa1", doc)
        assert too_many.status_code == 413, too_many.text
        body = too_many.json()
        assert (body["code"], body["events"], body["limit"]) == ("capture_too_large", events, events - 1)
        assert api.head() == before
        options = api.client.options("/epcis/capture", headers=api.auth("qa1")).headers
        assert options["GS1-EPCIS-Capture-Limit"] == str(events - 1)
    finally:
        settings.epcis_capture_limit = 5000


def test_a_named_query_is_kept_listed_answered_and_deleted_by_whoever_made_it(api: Api) -> None:
    shipping = {"EQ_bizStep": "shipping", "eventType": ["ObjectEvent"]}
    made = api.post("qa1", "/epcis/queries", {"name": "shipments.all", "query": shipping})
    assert made.status_code == 201, made.text
    assert made.headers["Location"] == "/epcis/queries/shipments.all"
    assert made.json()["query"] == {"EQ_bizStep": ["shipping"], "eventType": ["ObjectEvent"]}
    again = api.post("qp1", "/epcis/queries", {"name": "shipments.all", "query": {}})
    assert again.status_code == 409 and again.json()["code"] == "already_exists"
    for name, query, field in (
        ("bad name", shipping, "name"),
        ("x", {"MATCH_foo": "y"}, "MATCH_foo"),
        ("x", {"perPage": "5"}, "perPage"),
        ("x", {"eventType": ["Event"]}, "eventType"),
    ):
        refused = api.post("qa1", "/epcis/queries", {"name": name, "query": query})
        assert refused.status_code == 400 and refused.json()["field"] == field, refused.text
    assert api.post("qa1", "/epcis/queries", {"name": "dispensed", "query": {"EQ_disposition": "dispensed"}})

    names = [q["name"] for q in api.get("qp1", "/epcis/queries").json()]
    assert names == ["dispensed", "shipments.all"]
    first = api.get("qp1", "/epcis/queries", params={"perPage": 1})
    assert [q["name"] for q in first.json()] == ["dispensed"]
    assert [q["name"] for q in api.get("qp1", _next(first) or "").json()] == ["shipments.all"]
    assert api.get("qp1", "/epcis/queries/shipments.all").json()["createdBy"] == "qa1"

    expected = event_list(document(api.get("qa1", "/epcis/events", params={**shipping, "perPage": 1000})))
    assert expected
    answered = document(api.get("qp1", "/epcis/queries/shipments.all/events", params={"perPage": 1000}))
    assert answered["epcisBody"]["queryResults"]["queryName"] == "shipments.all"
    assert event_list(answered) == expected
    paged: list[str] = []
    url: str | None = "/epcis/queries/shipments.all/events?perPage=2"
    while url is not None:
        response = api.get("qp1", url)
        paged += [e["eventID"] for e in event_list(document(response))]
        url = _next(response)
    assert paged == [e["eventID"] for e in expected]
    assert api.get("qp1", "/epcis/queries/nothing/events").status_code == 404

    assert api.client.delete("/epcis/queries/shipments.all", headers=api.auth("qp1")).status_code == 403
    assert api.client.delete("/epcis/queries/shipments.all", headers=api.auth("qa1")).status_code == 204
    assert api.get("qa1", "/epcis/queries/shipments.all").status_code == 404
    assert api.get("site1", "/epcis/queries").status_code == 403


def test_control_characters_in_any_epcis_value_are_refused_naming_where(api: Api) -> None:
    for path, params, field in (
        ("/epcis/events", {"MATCH_inputEPC": "urn:epc:id:sgtin:1\x00"}, "MATCH_inputEPC"),
        (f"/epcis/bizSteps/{quote('ship' + chr(0), safe='')}/events", {}, "EQ_bizStep"),
        (f"/epcis/events/{quote('ni:///sha-256;00' + chr(0), safe='')}", {}, "eventID"),
    ):
        answer = api.get("qa1", path, params=params)
        assert answer.status_code == 400, (path, answer.text)
        assert answer.json()["field"] == field
    stored = api.post("qa1", "/epcis/queries", {"name": "nul", "query": {"EQ_bizStep": "a\x00"}})
    assert stored.status_code == 400 and stored.json()["field"] == "EQ_bizStep"
    assert api.get("qa1", f"/epcis/queries/{quote('a' + chr(0), safe='')}").status_code == 404


def test_epcis_errors_are_the_bindings_problem_details_and_keep_lotlines_code(api: Api) -> None:
    doc = {**document(api.get("qa1", "/epcis/events/export")), "epcisBody": {"eventList": [{"type": "X"}]}}
    answers = [
        (api.get("qa1", "/epcis/events", params={"EQ_action": "FOO"}), "QueryParameterException"),
        (api.get("qa1", "/epcis/events", params={"maxEventCount": 1}), "QueryTooLargeException"),
        (api.get("qa1", "/epcis/queries/nothing"), "NoSuchNameException"),
        (api.get("qa1", "/epcis/nothing"), "NoSuchResourceException"),
        (api.get("site1", "/epcis/events"), "SecurityException"),
        (api.client.get("/epcis/events"), "SecurityException"),
        (api.client.get("/epcis/events", headers={**api.auth("qa1"), "GS1-EPCIS-Version": "1.2"}),
         "NotAcceptableException"),
        (capture(api, "qa1", doc), "ValidationException"),
    ]
    for answer, kind in answers:
        body = answer.json()
        assert answer.headers["content-type"] == "application/problem+json", answer.text
        assert body["type"] == f"epcisException:{kind}" and body["status"] == answer.status_code, answer.text
        assert body["title"] and body["detail"] == body["message"] and body["instance"].startswith("/epcis")
        assert body["code"] and answer.headers["GS1-EPCIS-Version"] == "2.0.0"
    # elsewhere, errors stay Lotline's plain JSON
    other = api.get("qa1", "/ids/kit", params={"number": "NOPE"})
    assert other.status_code == 404 and other.headers["content-type"] == "application/json"
    assert "type" not in other.json()


def test_a_site_captures_its_own_receipts_and_dispensing_and_nothing_else(api: Api, program: Program) -> None:
    program.ship(["K00001", "K00002"], shipment_number="S-1", serial=1)
    context = document(api.get("qa1", "/epcis/events/export"))["@context"]
    kits = [sgtin(KIT_GTIN, n) for n in ("K00001", "K00002")]
    received = site_document(context, site_event("receiving", "in_progress", kits))
    # another site's staff may not confirm it, whatever the document says
    elsewhere = capture(api, "site2", received)
    assert elsewhere.status_code == 400, elsewhere.text
    assert [e["code"] for e in elsewhere.json()["errors"]] == ["not_bound_here"]
    # nor learn, by receiving the kits at their own site, which shipment carries them
    at_fr = site_event("receiving", "in_progress", kits)
    at_fr["readPoint"] = at_fr["bizLocation"] = {"id": sgln(FR_SITE_GLN)}
    guessed = capture(api, "site2", site_document(context, at_fr))
    assert guessed.status_code == 400, guessed.text
    assert "S-1" not in guessed.text and guessed.json()["errors"][0]["code"] == "epcis_unmapped"
    head = api.head()
    assert capture(api, "site1", received).status_code == 202
    assert api.head()[0] > head[0]
    again = capture(api, "site1", received)  # a retry over a flaky network records nothing
    assert again.status_code == 202 and again.json()["recorded"] == 0
    dispensed = site_event("dispensing", "dispensed", kits[:1], **{"lotline:subject": "DE-001-0001"})
    dispensing = site_document(context, dispensed)
    assert capture(api, "site1", dispensing).status_code == 202
    statuses = [api.ledger.get(Kit, program.kit(n)).status for n in ("K00001", "K00002")]
    assert statuses == [KitStatus.DISPENSED, KitStatus.RECEIVED]
    # a site's staff capture only a site's steps: a QA decision is refused by the ledger's roles
    released = site_document(
        context, site_event("inspecting", "conformant", [], quantityList=[{"epcClass": DP_LOT}])
    )
    refused = capture(api, "site1", released)
    assert refused.status_code == 400 and refused.json()["errors"][0]["code"] == "not_authorised"
    # an event naming another doer than the one who captures it would be given back with a false doer
    claimed = {"principal": "qp1", "role": "qp", "name": USERS["qp1"][1]}
    spoofed = site_document(context, site_event(
        "dispensing", "dispensed", kits[1:], **{"lotline:subject": "DE-001-0002", "lotline:actor": claimed}
    ))
    refused = capture(api, "site1", spoofed)
    assert refused.status_code == 400, refused.text
    (error,) = refused.json()["errors"]
    assert error["code"] == "epcis_not_kept" and "qp1" in error["reason"] and "site1" in error["reason"]
    # the site's own jobs, its refusals included, at the Location it was given
    assert api.get("site1", refused.headers["Location"]).json()["success"] is False
    assert len(api.get("site1", "/epcis/capture").json()) == 5  # received, again, dispensed, 2 refused
