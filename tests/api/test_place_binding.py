"""Over HTTP, on both stores: depot and manufacturing users are bound to their places like site users,
the ledger refuses them elsewhere (403 not_bound_here), and a site learns nothing of a kit held
elsewhere from a refusal."""

from __future__ import annotations

from typing import Any

from ledger.values import Role
from tests.api.conftest import Api, signature
from tests.builders import Program


def open_recall(api: Api, program: Program) -> str:
    body = {
        "recall_number": "RC-9",
        "lot_ids": [str(program.api)],
        "reason": "impurity",
        "classification": "class_ii",
        "scope": "all_kits",
        "signature": signature("approved"),
    }
    answer = api.post("qa1", "/recalls", body)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def refused(answer: Any) -> dict[str, Any]:
    assert answer.status_code == 403, answer.text
    body = dict(answer.json())
    assert body["code"] == "not_bound_here", body
    return body


def test_a_depot_user_cannot_act_for_a_site(api: Api, program: Program) -> None:
    program.at_site(["K00001", "K00002"])
    rid = open_recall(api, program)
    head = api.head()
    refused(api.post("depot1", f"/recalls/{rid}/sites/{program.site}/acknowledgement"))
    kits = [str(program.kit("K00001"))]
    body = {"kit_ids": kits, "min_celsius": "2", "max_celsius": "30", "duration_minutes": 60}
    refused(api.post("depot1", f"/locations/{program.site}/excursions", body))
    report = {"kits": [{"kit_id": str(program.kit("K00002")), "outcome": "quarantined"}]}
    refused(api.post("depot1", f"/recalls/{rid}/sites/{program.site}/reports", report))
    assert api.head() == head
    # the depot acts at its own place; the site at its own
    assert api.post("depot1", f"/recalls/{rid}/sites/{program.depot}/acknowledgement").status_code == 200
    assert api.post("site1", f"/recalls/{rid}/sites/{program.site}/acknowledgement").status_code == 200


def test_manufacturing_users_work_at_their_places_only(api: Api, program: Program) -> None:
    api.add_user("mfg9", Role.MANUFACTURING, "Mo Elsewhere", (program.depot,))
    deviation = {"number": "DEV-9", "description": "mixer stopped", "classification": "minor"}
    head = api.head()
    answer = refused(api.post("mfg9", f"/batches/{program.batch}/deviations", deviation))
    assert "mfg9 is not bound to this place" in answer["message"]
    assert api.head() == head
    assert api.post("mfg1", f"/batches/{program.batch}/deviations", deviation).status_code == 200


def test_a_site_learns_nothing_of_a_kit_held_elsewhere(api: Api, program: Program) -> None:
    program.at_site(["K00001"])
    open_recall(api, program)  # K00002 is at the depot, its lot recalled
    path = f"/sites/{program.site}/kits/{program.kit('K00002')}/dispensing"
    answer = api.post("site1", path, {"subject": "S-9"})
    assert answer.status_code == 409, answer.text
    text = answer.text
    assert "is not held at this place; cannot dispense" in text
    for hint in ("available", "recall", "depot", str(program.depot)):
        assert hint not in text.lower(), hint
