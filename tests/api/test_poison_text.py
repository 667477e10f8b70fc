"""Text a store cannot hold (NUL, lone surrogates) or that makes no sense in a one-line field (control
characters) is refused at the door with a 422 naming the field or parameter: in a command's body, in a
lookup's query and in an EPCIS query. Nothing is written, nothing answers 500, and the read models go
on (a NUL once stopped every read model on PostgreSQL)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.api.bodies import commands
from tests.api.conftest import Api
from tests.builders import KIT_GTIN, Program


def receive_body(program: Program, **changes: Any) -> dict[str, Any]:
    _, body, _ = commands(program)["receive_lot"]
    return {**body, **changes}


BODY_CASES = [
    ("NUL in a name", {"material": "Lotlinib\u0000"}, "body.material"),
    ("lone surrogate", {"supplier": "Chem\ud800Co"}, "body.supplier"),
    ("control character", {"lot_number": "L-1\u0007"}, "body.lot_number"),
    ("line break in a one-line field", {"material": "Lotli\nnib"}, "body.material"),
]


def test_text_a_store_cannot_hold_is_refused_naming_the_field(api: Api, program: Program) -> None:
    head = api.head()
    for label, change, field in BODY_CASES:
        # sent as JSON text with \u escapes, as a client would send a lone surrogate
        answer = api.client.post(
            "/lots",
            content=json.dumps(receive_body(program, **change)),
            headers={**api.auth("mfg1"), "Content-Type": "application/json"},
        )
        assert answer.status_code == 422, (label, answer.text)
        assert answer.json()["field"] == field, (label, answer.json())
    assert api.head() == head
    # the same lot with clean text is recorded, and every read model reaches it
    assert api.post("mfg1", "/lots", receive_body(program)).status_code == 201
    ready = api.get("admin1", "/ready")
    assert ready.status_code == 200, ready.text


@pytest.mark.parametrize(
    ("path", "params", "name"),
    [
        ("/ids/kit", {"gtin": KIT_GTIN, "number": "K\u000000001"}, "number"),
        ("/ids/shipment", {"number": "S-1\u001b[2J"}, "number"),
        ("/epcis/events", {"MATCH_epc": "urn:epc:id:sgtin:\u0000"}, "MATCH_epc"),
        ("/epcis/events", {"EQ_bizStep": "shipping\u0000"}, "EQ_bizStep"),
    ],
)
def test_a_nul_in_a_query_is_refused_naming_the_parameter(
    api: Api, program: Program, path: str, params: dict[str, str], name: str
) -> None:
    answer = api.get("recall1", path, params=params)
    # 400 on the EPCIS routes: the binding's QueryParameterException
    assert answer.status_code == (400 if path.startswith("/epcis") else 422), answer.text
    assert name in answer.json()["field"], answer.json()
