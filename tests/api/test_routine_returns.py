"""A return shipment from a site to a depot outside any recall, over HTTP on both stores: sent back
with a reason, received at the depot, its custody showing both places; refused where the sender or
the receiver is not bound, and for kits the site does not hold."""

from __future__ import annotations

from uuid import UUID

from tests.api.conftest import Api
from tests.builders import Program


def test_a_site_sends_kits_back_and_the_depot_receives_them(api: Api, program: Program) -> None:
    program.at_site(["K00001", "K00002", "K00003"])
    kits = [str(program.kit(n)) for n in ("K00002", "K00003")]
    back = {"depot_id": str(program.depot), "kit_ids": kits, "reason": "surplus after the last visit"}
    head = api.head()
    assert api.post("site2", f"/sites/{program.site}/returns", back).status_code == 403  # not their site
    unsaid = api.post("site1", f"/sites/{program.site}/returns", {**back, "reason": " "})
    assert unsaid.status_code == 422 and unsaid.json()["field"] == "reason", unsaid.text
    at_depot = [str(program.kit("K00007"))]
    elsewhere = api.post("site1", f"/sites/{program.site}/returns", {**back, "kit_ids": at_depot})
    assert elsewhere.status_code == 409 and "is not held at this place" in elsewhere.text
    assert api.head() == head

    sent = api.post("site1", f"/sites/{program.site}/returns", back)
    assert sent.status_code == 200, sent.text
    assert len(sent.json()["events"]) == 2
    custody = api.get("site1", f"/custody/kits/{kits[0]}").json()["steps"][-1]
    assert (custody["action"], custody["from_place"]["name"], custody["to_place"]["name"]) == (
        "sent_back",
        "Site 101",
        "Depot",
    )

    receipt = {"kit_ids": kits}
    nowhere = api.post("depot1", f"/locations/{UUID(int=5)}/returns", receipt)
    assert nowhere.status_code == 403 and nowhere.json()["code"] == "not_bound_here"
    assert api.post("site1", f"/locations/{program.depot}/returns", receipt).status_code == 403
    received = api.post("depot1", f"/locations/{program.depot}/returns", receipt)
    assert received.status_code == 200, received.text
    steps = api.get("depot1", f"/custody/kits/{kits[1]}").json()["steps"]
    assert [s["action"] for s in steps[-2:]] == ["sent_back", "received_back"]
    assert steps[-1]["to_place"]["name"] == "Depot"
    again = api.post("depot1", f"/locations/{program.depot}/returns", receipt)
    assert again.status_code == 409
    assert {p["kit_number"] for p in again.json()["problems"]} == {"K00002", "K00003"}
