"""The destruction custody rule over HTTP: a site cannot destroy a kit the depot holds; the depot can."""

from __future__ import annotations

from ledger.domain import Kit, KitStatus
from tests.api.conftest import Api, signature
from tests.builders import Program


def authorise(api: Api, program: Program, *numbers: str) -> None:
    body = {
        "kit_ids": [str(k) for k in program.kits(*numbers)],
        "signature": signature("authorised_destruction"),
        "reason": "damaged cartons",
    }
    assert api.post("qa1", "/kits/destruction-authorisations", body).status_code == 200


def test_a_site_cannot_destroy_a_kit_held_at_the_depot(api: Api, program: Program) -> None:
    authorise(api, program, "K00001")
    head = api.head()
    body = {"kit_ids": [str(program.kit("K00001"))], "certificate": "DC-1", "method": "incineration"}
    answer = api.post("site1", f"/locations/{program.site}/destructions", body)
    assert answer.status_code == 409, answer.text
    assert answer.json()["code"] == "kits_not_usable"
    (refused,) = answer.json()["problems"]
    assert refused["kit_number"] == "K00001"
    assert "is not held at this place" in refused["reason"]
    assert api.head() == head
    assert api.ledger.get(Kit, program.kit("K00001")).status == KitStatus.PENDING_DESTRUCTION


def test_the_depot_destroys_the_kit_it_holds(api: Api, program: Program) -> None:
    authorise(api, program, "K00001")
    body = {"kit_ids": [str(program.kit("K00001"))], "certificate": "DC-1", "method": "incineration"}
    answer = api.post("depot1", f"/locations/{program.depot}/destructions", body)
    assert answer.status_code == 200, answer.text
    kit = api.ledger.get(Kit, program.kit("K00001"))
    assert (kit.status, kit.destroyed_at_id) == (KitStatus.DESTROYED, program.depot)
    steps = api.get("recall1", f"/custody/kits/{program.kit('K00001')}").json()["steps"]
    destroyed = steps[-1]
    assert destroyed["action"] == "destroyed" and destroyed["from_place"]["name"] == "Depot"
    assert destroyed["detail"] == {"certificate": "DC-1", "method": "incineration"}
