"""Implausible data over HTTP, on both stores: each refused with a 4xx naming the field and the
rule, nothing written; a yield above theoretical goes in only with its deviation, which the batch's
audit trail then shows."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.api.bodies import commands
from tests.api.conftest import Api
from tests.builders import Program, today


def body(program: Program, name: str, **changes: Any) -> tuple[str, dict[str, Any]]:
    path, base, _ = commands(program)[name]
    return path, {**base, **changes}


def refused(api: Api, principal: str, path: str, payload: dict[str, Any]) -> dict[str, Any]:
    answer = api.post(principal, path, payload)
    assert answer.status_code == 422, answer.text
    return dict(answer.json())


def test_implausible_lots_places_trials_and_temperatures_are_refused(api: Api, program: Program) -> None:
    head = api.head()
    tomorrow = (today() + timedelta(days=2)).isoformat()
    cases = [
        ("mfg1", "receive_lot", {"manufactured_on": tomorrow}, "manufactured_on"),
        ("mfg1", "receive_lot", {"manufactured_on": "1900-01-01", "expires_on": "1901-01-01"},
         "manufactured_on"),
        ("mfg1", "receive_lot", {"expires_on": "9999-12-31"}, "expires_on"),
        (
            "mfg1",
            "receive_lot",
            {"manufactured_on": "2024-01-01", "expires_on": (today() - timedelta(days=1)).isoformat()},
            "expires_on",
        ),
        ("admin1", "register_location", {"occurred_at": "1792-03-01T00:00:00Z"}, "occurred_at"),
        ("admin1", "register_location", {"country": "AA"}, "country"),
        ("admin1", "register_trial", {"countries": ["DE", "AA"]}, "countries"),
        ("depot1", "report_excursion", {"min_celsius": "30", "max_celsius": "10"}, "max_celsius"),
    ]
    for principal, name, change, field in cases:
        path, payload = body(program, name, **change)
        answer = refused(api, principal, path, payload)
        assert answer["code"] == "invalid_input" and answer["field"] == field, (name, change, answer)
    assert api.head() == head


def test_a_yield_above_theoretical_is_recorded_only_with_its_deviation(api: Api, program: Program) -> None:
    head = api.head()
    path, payload = body(program, "formulate", actual_yield={"amount": "130", "unit": "unit"})
    answer = refused(api, "mfg1", path, payload)
    assert answer["field"] == "deviation" and "130.00%" in answer["message"]
    assert api.head() == head

    deviation = {"number": "DEV-130", "description": "press over-count", "classification": "major"}
    made = api.post("mfg1", path, {**payload, "deviation": deviation})
    assert made.status_code == 201, made.text
    batch = made.json()["batch_id"]
    trail = api.get("qa1", f"/audit/{batch}", params={"after": api.position()})
    assert trail.status_code == 200, trail.text
    formulated = trail.json()["entries"]["items"][0]
    assert formulated["changes"]["deviation"] == deviation, formulated

    again = api.post("qa1", f"/batches/{batch}/deviations", {**deviation, "description": "again"})
    assert again.status_code == 409 and again.json()["code"] == "already_exists", again.text


def test_a_deviation_number_twice_on_one_batch_is_a_conflict(api: Api, program: Program) -> None:
    path, payload = body(program, "record_deviation", number="DEV-2025-001")
    assert api.post("qa1", path, payload).status_code == 200
    head = api.head()
    second = api.post("qa1", path, payload)
    assert second.status_code == 409 and "DEV-2025-001" in second.json()["message"], second.text
    assert api.head() == head


def test_an_in_house_placebo_batch_over_http(api: Api, program: Program) -> None:
    path, payload = body(program, "formulate", inputs=[
        {"lot_id": str(program.excipient), "quantity": {"amount": "100", "unit": "g"}}
    ])
    refused = api.post("mfg1", path, payload)
    assert refused.status_code == 422 and refused.json()["field"] == "inputs", refused.text
    made = api.post("mfg1", path, {**payload, "placebo": True})
    assert made.status_code == 201, made.text
    trail = api.get("qa1", f"/audit/{made.json()['batch_id']}", params={"after": api.position()}).json()
    assert [i["kind"] for i in trail["entries"]["items"][0]["changes"]["inputs"]] == ["excipient"]
