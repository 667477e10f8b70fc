"""EPCIS query subscriptions over WebSocket (`/epcis/queries/{name}/events?stream=true`): each new
matching event once, and a subscriber that comes back with its resume token, even to a restarted
server, goes on where it stopped."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import WebSocketDenialResponse, WebSocketTestSession

from epcis.subscriptions import RESUME
from tests.api.conftest import Api, start_api
from tests.builders import Program
from tests.epcis_reference import schema_validator

PATH = "/epcis/queries/shipping/events"


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


def _shipping_query(api: Api) -> None:
    made = api.post("qa1", "/epcis/queries", {"name": "shipping", "query": {"EQ_bizStep": "shipping"}})
    assert made.status_code == 201, made.text


def test_a_subscriber_gets_each_new_event_once_and_resumes_after_a_restart(
    api: Api, program: Program, database_url: str, tmp_path: Path
) -> None:
    _shipping_query(api)
    program.ship(["K00001"], shipment_number="S-1", serial=1)  # before the subscription: not delivered
    with api.client.websocket_connect(f"{PATH}?stream=true", headers=api.auth("qa1")) as ws:
        program.ship(["K00002"], shipment_number="S-2", serial=2)
        first = _receive(ws)
        assert _results(first)["queryName"] == "shipping" and _results(first)["subscriptionID"]
        assert [e["lotline:shipmentNumber"] for e in _events(first)] == ["S-2"]
        assert [e.message for e in schema_validator().iter_errors(first)] == []
        program.at_site(["K00003"], shipment_number="S-3", serial=3)  # a receipt too: not shipping
        second = _receive(ws)
        assert [e["lotline:shipmentNumber"] for e in _events(second)] == ["S-3"]
        token = _results(second)[RESUME]
    # while nobody listens, and across a restart of the server (a new app on the same store and keys,
    # which knows nothing of the subscription), two more shipments are recorded
    program.ship(["K00004"], shipment_number="S-4", serial=4)
    program.ship(["K00005"], shipment_number="S-5", serial=5)
    for restarted in start_api(database_url, tmp_path):
        restarted.tokens = api.tokens
        url = f"{PATH}?stream=true&resumeToken={token}"
        with restarted.client.websocket_connect(url, headers=restarted.auth("qa1")) as ws:
            shipped: list[str] = []
            while len(shipped) < 2:
                shipped += [e["lotline:shipmentNumber"] for e in _events(_receive(ws))]
            assert shipped == ["S-4", "S-5"]  # none missed, none twice
            program.ship(["K00006"], shipment_number="S-6", serial=6)
            assert [e["lotline:shipmentNumber"] for e in _events(_receive(ws))] == ["S-6"]


@pytest.mark.parametrize(
    ("who", "path", "status", "code"),
    [
        (None, f"{PATH}?stream=true", 401, "invalid_credentials"),
        ("site1", f"{PATH}?stream=true", 403, "forbidden"),
        ("qa1", "/epcis/queries/nothing/events?stream=true", 404, "not_found"),
        ("qa1", PATH, 422, "invalid_input"),  # only streaming subscriptions
        ("qa1", f"{PATH}?stream=true&resumeToken=not-a-token", 422, "invalid_input"),
        ("qa1", f"{PATH}?stream=true&resumeToken=%00", 422, "invalid_input"),
    ],
)
def test_a_subscription_is_refused_at_the_handshake_with_the_status_and_reason(
    api: Api, who: str | None, path: str, status: int, code: str
) -> None:
    _shipping_query(api)
    headers = api.auth(who) if who else {}
    with pytest.raises(WebSocketDenialResponse) as refused:
        api.client.websocket_connect(path, headers=headers).__enter__()
    assert refused.value.status_code == status
    assert refused.value.json()["code"] == code and refused.value.json()["message"]
    assert refused.value.headers["content-type"] == "application/problem+json"
    assert refused.value.json()["type"].startswith("epcisException:")


def test_a_query_in_its_own_order_or_cut_to_a_count_cannot_be_subscribed_to(api: Api) -> None:
    query = {"EQ_bizStep": "shipping", "orderBy": "eventTime"}
    assert api.post("qa1", "/epcis/queries", {"name": "latest", "query": query}).status_code == 201
    path = "/epcis/queries/latest/events?stream=true"
    with pytest.raises(WebSocketDenialResponse) as refused:
        api.client.websocket_connect(path, headers=api.auth("qa1")).__enter__()
    assert refused.value.status_code == 422 and refused.value.json()["field"] == "orderBy"
