"""EPCIS query subscriptions over WebSocket (`/epcis/queries/{name}/events?stream=true`): each new
matching event once, and a subscriber that comes back with its resume token, even to a restarted
server, goes on where it stopped."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import WebSocketDenialResponse, WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from epcis.ids import sgtin
from epcis.subscriptions import RESUME
from tests.api.conftest import PASSWORD, Api, start_api
from tests.builders import BY_ADMIN, KIT_GTIN, Program
from tests.epcis_reference import schema_validator
from tests.integration.epcis_helpers import site_document, site_event

PATH = "/epcis/queries/receipts/events"
REAUTH = {"Lotline-Signature-Password": PASSWORD}


def _receive(ws: WebSocketTestSession, seconds: float = 30) -> dict[str, Any]:
    """The next message, or a failure after `seconds` (the test client would wait for ever)."""
    got: list[Any] = []
    reader = threading.Thread(target=lambda: got.append(ws.receive_json()), daemon=True)
    reader.start()
    reader.join(seconds)
    assert got, f"no subscription message within {seconds} s"
    return dict(got[0])


def _results(document: dict[str, Any]) -> dict[str, Any]:
    return dict(document["epcisBody"]["queryResults"])


def _events(document: dict[str, Any]) -> list[dict[str, Any]]:
    return list(_results(document)["resultsBody"]["eventList"])


def _kits(document: dict[str, Any]) -> list[str]:
    return [epc.rsplit(".", 1)[1] for e in _events(document) for epc in e["epcList"]]


def _receipts_query(api: Api) -> None:
    made = api.post("qa1", "/epcis/queries", {"name": "receipts", "query": {"EQ_bizStep": "receiving"}})
    assert made.status_code == 201, made.text


def _captured_receipt(api: Api, number: str) -> str:
    """The DE site's own system sends the receipt of kit `number` as EPCIS; its eventID."""
    context = api.get("qa1", "/epcis/events/export").json()["@context"]
    document = site_document(context, site_event("receiving", "in_progress", [sgtin(KIT_GTIN, number)]))
    answer = api.post("site1", "/epcis/capture", document, headers=REAUTH)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["eventIDs"][0])


def test_a_subscriber_gets_each_new_event_once_and_resumes_after_a_restart(
    api: Api, program: Program, database_url: str, tmp_path: Path
) -> None:
    _receipts_query(api)
    shipped = {n: program.ship([n], shipment_number=f"S-{i}", serial=i) for i, n in enumerate(
        ("K00001", "K00002", "K00003", "K00004", "K00005", "K00006"), start=1
    )}
    program.receive_all(shipped["K00001"], ["K00001"])  # before the subscription: not delivered
    with api.client.websocket_connect(f"{PATH}?stream=true", headers=api.auth("qa1")) as ws:
        program.receive_all(shipped["K00002"], ["K00002"])
        first = _receive(ws)
        assert _results(first)["queryName"] == "receipts" and _results(first)["subscriptionID"]
        assert _kits(first) == ["K00002"]
        assert [e.message for e in schema_validator().iter_errors(first)] == []
        captured = _captured_receipt(api, "K00003")  # a site's EPCIS capture, delivered like any event
        second = _receive(ws)
        assert _kits(second) == ["K00003"] and [e["eventID"] for e in _events(second)] == [captured]
        token = _results(second)[RESUME]
    # while nobody listens, and across a restart of the server (a new app on the same store and keys,
    # which knows nothing of the subscription), two more receipts are recorded
    program.receive_all(shipped["K00004"], ["K00004"])
    program.receive_all(shipped["K00005"], ["K00005"])
    for restarted in start_api(database_url, tmp_path):
        restarted.tokens = api.tokens
        url = f"{PATH}?stream=true&resumeToken={token}"
        with restarted.client.websocket_connect(url, headers=restarted.auth("qa1")) as ws:
            kits: list[str] = []
            while len(kits) < 2:
                kits += _kits(_receive(ws))
            assert kits == ["K00004", "K00005"]  # none missed, none twice
            _captured_receipt(restarted, "K00006")
            assert _kits(_receive(ws)) == ["K00006"]


@pytest.mark.parametrize(
    ("who", "path", "status", "code"),
    [
        (None, f"{PATH}?stream=true", 401, "invalid_credentials"),
        ("site1", f"{PATH}?stream=true", 403, "forbidden"),
        ("qa1", "/epcis/queries/nothing/events?stream=true", 404, "not_found"),
        ("qa1", PATH, 400, "invalid_input"),  # only streaming subscriptions
        ("qa1", f"{PATH}?stream=true&resumeToken=not-a-token", 400, "invalid_input"),
        ("qa1", f"{PATH}?stream=true&resumeToken=%00", 400, "invalid_input"),
    ],
)
def test_a_subscription_is_refused_at_the_handshake_with_the_status_and_reason(
    api: Api, who: str | None, path: str, status: int, code: str
) -> None:
    _receipts_query(api)
    headers = api.auth(who) if who else {}
    with pytest.raises(WebSocketDenialResponse) as refused:
        api.client.websocket_connect(path, headers=headers).__enter__()
    assert refused.value.status_code == status
    assert refused.value.json()["code"] == code and refused.value.json()["message"]
    assert refused.value.headers["content-type"] == "application/problem+json"
    assert refused.value.json()["type"].startswith("epcisException:")


def test_a_query_in_its_own_order_or_cut_to_a_count_cannot_be_subscribed_to(api: Api) -> None:
    query = {"EQ_bizStep": "receiving", "orderBy": "eventTime"}
    assert api.post("qa1", "/epcis/queries", {"name": "latest", "query": query}).status_code == 201
    path = "/epcis/queries/latest/events?stream=true"
    with pytest.raises(WebSocketDenialResponse) as refused:
        api.client.websocket_connect(path, headers=api.auth("qa1")).__enter__()
    assert refused.value.status_code == 400 and refused.value.json()["field"] == "orderBy"


def test_a_subscription_ends_when_its_user_may_no_longer_read(api: Api, program: Program) -> None:
    _receipts_query(api)
    shipment = program.ship(["K00001"], shipment_number="S-1", serial=1)
    ended: list[BaseException] = []
    with api.client.websocket_connect(f"{PATH}?stream=true", headers=api.auth("qa1")) as ws:
        api.identity.revoke_tokens("qa1", **BY_ADMIN)
        program.receive_all(shipment, ["K00001"])  # a new event: not delivered to a revoked token

        def read() -> None:
            try:
                ws.receive_json()
            except WebSocketDisconnect as e:
                ended.append(e)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(30)
    assert ended and getattr(ended[0], "code", None) == 1008, ended
