"""Bad input: malformed JSON, wrong types, negative or absurd quantities, unknown units, wrong date
formats, unknown ids, unknown fields and oversized bodies each get a 4xx naming the field; nothing is
written and nothing answers 500."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.bodies import commands
from tests.api.conftest import Api
from tests.builders import Program


def receive_body(program: Program, **changes: Any) -> dict[str, Any]:
    _, body, _ = commands(program)["receive_lot"]
    return {**body, **changes}


CASES = [
    ("negative quantity", {"quantity": {"amount": "-5", "unit": "kg"}}, "body.quantity.amount"),
    ("zero quantity", {"quantity": {"amount": 0, "unit": "kg"}}, "body.quantity.amount"),
    ("unknown unit", {"quantity": {"amount": "5", "unit": "tons"}}, "body.quantity.unit"),
    ("quantity as words", {"quantity": {"amount": "five", "unit": "kg"}}, "body.quantity.amount"),
    ("infinite quantity", {"quantity": {"amount": "Infinity", "unit": "kg"}}, "body.quantity.amount"),
    ("wrong type", {"lot_number": 12345}, "body.lot_number"),
    ("list for object", {"quantity": ["5", "kg"]}, "body.quantity"),
    ("date in the wrong format", {"expires_on": "31/12/2027"}, "body.expires_on"),
    ("impossible date", {"expires_on": "2027-02-30"}, "body.expires_on"),
    ("naive time", {"occurred_at": "2026-01-01T10:00:00"}, "body.occurred_at"),
    ("malformed id", {"location_id": "not-a-uuid"}, "body.location_id"),
    ("unknown field", {"colour": "blue"}, "body.colour"),
    ("unknown kind", {"kind": "plutonium"}, "body.kind"),
]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_malformed_fields_are_refused_with_422_naming_the_field(api: Api, program: Program) -> None:
    head = api.head()
    for label, change, field in CASES:
        answer = api.post("mfg1", "/lots", receive_body(program, **change))
        assert answer.status_code == 422, (label, answer.text)
        body = answer.json()
        assert body["code"] == "invalid_input" and body["field"] == field, (label, body)
    assert api.head() == head


def test_ledger_range_checks_name_the_field_too(api: Api, program: Program) -> None:
    head = api.head()
    absurd = api.post("mfg1", "/lots", receive_body(program, quantity={"amount": "1e12", "unit": "kg"}))
    assert absurd.status_code == 422 and absurd.json()["field"] == "quantity", absurd.text
    backwards = api.post("mfg1", "/lots", receive_body(program, expires_on="2000-01-01"))
    assert backwards.status_code == 422 and backwards.json()["field"] == "expires_on"
    check_digit = api.post("mfg1", "/lots", receive_body(program, gtin="04000000009901"))
    assert check_digit.status_code == 422 and check_digit.json()["code"] == "invalid_identifier"
    too_short = api.post("mfg1", "/lots", receive_body(program, gtin="123"))
    assert too_short.status_code == 422 and too_short.json()["code"] == "invalid_identifier"
    assert too_short.json()["field"] == "gtin"
    future = api.post("mfg1", "/lots", receive_body(program, occurred_at="2999-01-01T00:00:00Z"))
    assert future.status_code == 409 and future.json()["code"] == "time_order"
    assert api.head() == head


def test_unknown_ids_answer_404_naming_the_kind(api: Api, program: Program) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    site = {"gln": "4000000000990", "kind": "clinical_site", "name": "S", "country": "DE", "site_number": "9"}
    answer = api.post("admin1", "/locations", {**site, "trial_id": unknown})
    assert answer.status_code == 404 and answer.json()["kind"] == "trial" and answer.json()["id"] == unknown
    # a place-bound user is refused at a place not theirs before anything of it is looked up
    answer = api.post("mfg1", "/lots", receive_body(program, location_id=unknown))
    assert answer.status_code == 403 and answer.json()["code"] == "not_bound_here", answer.text
    answer = api.post("qa1", f"/lots/{unknown}/hold", {"reason": "x"})
    assert answer.status_code == 404 and answer.json()["kind"] == "lot"
    assert api.get("qa1", f"/trace/lots/{unknown}/forward").status_code == 404
    assert api.get("qa1", f"/audit/{unknown}").status_code == 404
    assert api.get("qa1", "/no/such/route").json()["code"] == "not_found"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_malformed_json_and_oversized_bodies(api: Api, program: Program) -> None:
    head = api.head()
    headers = {**api.auth("mfg1"), "content-type": "application/json"}
    broken = api.client.post("/lots", content=b'{"gtin": "0400', headers=headers)
    assert broken.status_code == 422 and broken.json()["problems"][0]["type"] == "json_invalid"
    not_object = api.client.post("/lots", content=b"[1, 2]", headers=headers)
    assert not_object.status_code == 422
    not_utf8 = api.client.post("/lots", content=b'{"gtin": "\xff"}', headers=headers)
    assert not_utf8.status_code == 422 and not_utf8.json()["field"] == "body", not_utf8.text
    huge = b'{"gtin": "' + b"0" * (2 * 1024 * 1024) + b'"}'
    too_big = api.client.post("/lots", content=huge, headers=headers)
    assert too_big.status_code == 413 and too_big.json()["code"] == "payload_too_large"

    def chunks() -> Any:  # no Content-Length: the limit is counted as the body streams in
        for _ in range(3):
            yield b" " * (512 * 1024)

    streamed = api.client.post("/lots", content=chunks(), headers=headers)
    assert streamed.status_code == 413, streamed.text
    assert api.head() == head


def test_business_rules_answer_409_with_the_rule_and_the_ids(api: Api, program: Program) -> None:
    head = api.head()
    _, body, _ = commands(program)["formulate"]
    greedy = {**body, "inputs": [{"lot_id": str(program.api), "quantity": {"amount": "50", "unit": "kg"}}]}
    answer = api.post("mfg1", "/batches", greedy)
    assert answer.status_code == 409
    assert answer.json()["code"] == "insufficient_quantity" and answer.json()["lot_number"] == "API-1"
    _, ship, _ = commands(program)["ship"]
    to_pending = {**ship, "to_id": str(program.pending_site)}
    answer = api.post("depot1", "/shipments", to_pending)
    assert answer.status_code == 409 and answer.json()["code"] == "site_not_active"
    assert api.head() == head
