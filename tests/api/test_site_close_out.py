"""A site closed out over HTTP, on both stores: deactivated first (no more kits), then closed out by
QA only once every kit delivered to it is accounted for; the refusal names what is still open."""

from __future__ import annotations

from ledger.commands import AuthoriseDestruction, DestroyKits, Dispense, ReturnToDepot
from ledger.values import Meaning, sign
from tests.api.conftest import Api, signature
from tests.builders import Program, actors


def test_a_site_closes_out_once_every_kit_is_accounted_for(api: Api, program: Program) -> None:
    p, L = program, program.ledger
    p.at_site(["K00001", "K00002", "K00003", "K00004"])
    in_transit = p.ship(["K00005"], shipment_number="S-2", serial=2)
    close = {"signature": signature("approved")}
    early = api.post("qa1", f"/sites/{p.site}/close-out", close)
    assert early.status_code == 409 and early.json()["code"] == "invalid_transition", early.text

    assert api.post("admin1", f"/sites/{p.site}/deactivation", {"reason": " "}).status_code == 422
    off = api.post("admin1", f"/sites/{p.site}/deactivation", {"reason": "last subject out; site closing"})
    assert off.status_code == 200, off.text
    no_more = api.post("depot1", "/shipments", {
        "shipment_number": "S-3", "sscc": "340000000000000038", "from_id": str(p.depot),
        "to_id": str(p.site), "kit_ids": [str(p.kit("K00006"))], "min_celsius": "2", "max_celsius": "8",
    })
    assert no_more.status_code == 409 and no_more.json()["code"] == "site_not_active", no_more.text

    head = api.head()
    refused = api.post("qa1", f"/sites/{p.site}/close-out", close)
    assert refused.status_code == 409 and refused.json()["code"] == "site_not_reconciled", refused.text
    assert refused.json()["kits"] == {
        "on_hand": ["K00001", "K00002", "K00003", "K00004"],
        "in_transit": ["K00005"],
    }
    assert "5 kit(s) not yet accounted for" in refused.json()["message"]
    assert api.head() == head

    # the site settles every kit: one dispensed, two sent back, the last shipment received and
    # destroyed there with the fourth kit, under QA's authorisation
    L.handle(Dispense(kit_id=p.kit("K00001"), site_id=p.site, subject="SUBJ-1"), actors.site)
    L.handle(ReturnToDepot(site_id=p.site, depot_id=p.depot, kit_ids=p.kits("K00002", "K00003"),
                           reason="site closing"), actors.site)
    p.receive_all(in_transit, ["K00005"])
    doomed = p.kits("K00004", "K00005")
    L.handle(AuthoriseDestruction(kit_ids=doomed, signature=sign(actors.qa, Meaning.AUTHORISED_DESTRUCTION),
                                  reason="site closing"), actors.qa)
    L.handle(DestroyKits(location_id=p.site, kit_ids=doomed, certificate="DC-CLOSE", method="incineration"),
             actors.site)

    closed = api.post("qa1", f"/sites/{p.site}/close-out", close)
    assert closed.status_code == 200, closed.text
    report = api.get("qa1", f"/sites/{p.site}/accountability").json()
    assert report["delivered"] == 5 and report["counts"]["dispensed"] == 1
    assert report["counts"]["sent_back"] == 2 and report["counts"]["destroyed"] == 2
    again = api.post("qa1", f"/sites/{p.site}/close-out", close)
    assert again.status_code == 409 and "closed_out" in again.json()["message"], again.text
    assert api.post("site1", f"/sites/{p.site}/close-out", close).status_code == 403
