"""A site's drug accountability over HTTP, on both stores: every kit delivered and what became of it,
the counts adding up to what was delivered; a site sees only its own."""

from __future__ import annotations

from ledger.commands import (
    AuthoriseDestruction,
    ConfirmReceipt,
    DestroyKits,
    Dispense,
    ReturnKit,
    ReturnToDepot,
)
from ledger.values import Meaning, sign
from tests.api.conftest import Api
from tests.builders import Program, actors


def a_site_with_every_outcome(p: Program) -> None:
    L = p.ledger
    first = p.ship(["K00001", "K00002", "K00003", "K00004", "K00005", "K00006", "K00007", "K00008"])
    outcomes = dict.fromkeys(["K00001", "K00002", "K00003", "K00004", "K00005", "K00008"], "received")
    L.handle(
        ConfirmReceipt(shipment_id=first, site_id=p.site, outcomes={**outcomes, "K00006": "damaged",
                                                                    "K00007": "missing"}),
        actors.site,
    )
    p.ship(["K00009"], shipment_number="S-2", serial=2)  # still on its way
    L.handle(Dispense(kit_id=p.kit("K00001"), site_id=p.site, subject="SUBJ-1"), actors.site)
    L.handle(Dispense(kit_id=p.kit("K00002"), site_id=p.site, subject="SUBJ-2"), actors.site)
    L.handle(ReturnKit(kit_id=p.kit("K00002"), site_id=p.site, condition="partially_used"), actors.site)
    authorised = sign(actors.qa, Meaning.AUTHORISED_DESTRUCTION)
    authorisation = AuthoriseDestruction(kit_ids=p.kits("K00003"), signature=authorised, reason="broken seal")
    L.handle(authorisation, actors.qa)
    L.handle(
        DestroyKits(location_id=p.site, kit_ids=p.kits("K00003"), certificate="DC-1", method="incineration"),
        actors.site,
    )
    back = ReturnToDepot(site_id=p.site, depot_id=p.depot, kit_ids=p.kits("K00004"), reason="surplus")
    L.handle(back, actors.site)


def test_every_kit_delivered_is_accounted_for(api: Api, program: Program) -> None:
    a_site_with_every_outcome(program)
    answer = api.get("site1", f"/sites/{program.site}/accountability")
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert (report["delivered"], report["received"]) == (9, 7)
    assert report["counts"] == {
        "in_transit": 1,
        "missing": 1,
        "on_hand": 2,
        "damaged": 1,
        "returned_by_subject": 1,
        "dispensed": 1,
        "destroyed": 1,
        "sent_back": 1,
    }
    assert sum(report["counts"].values()) == report["delivered"]
    kits = {k["kit_number"]: k for k in report["kits"]["items"]}
    assert [kits[n]["outcome"] for n in sorted(kits)] == [
        "dispensed", "returned_by_subject", "destroyed", "sent_back", "on_hand", "damaged", "missing",
        "on_hand", "in_transit",
    ]
    assert kits["K00004"]["now_at"]["name"] == "Depot" and kits["K00001"]["subject"] == "SUBJ-1"
    assert kits["K00009"]["received_at"] is None and kits["K00005"]["shipment_number"] == "S-1"
    assert api.get("site2", f"/sites/{program.site}/accountability").status_code == 403
    assert api.get("qa1", f"/sites/{program.site}/accountability").status_code == 200

    page = api.get("site1", f"/sites/{program.site}/accountability/report")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<tr><th>Delivered</th><td class='n'>9</td></tr>" in page.text
    assert "<tr><th>Total</th><td class='n'>9</td></tr>" in page.text
    assert "<td>K00004</td><td>S-1</td>" in page.text and "sent back to a depot" in page.text
    received = kits["K00005"]["received_at"]  # shown as a person reads it
    assert f"<td>{received[:10]} {received[11:16]} UTC</td>" in page.text


def test_a_site_nothing_was_shipped_to_has_nothing_to_account_for(api: Api, program: Program) -> None:
    report = api.get("site2", f"/sites/{program.fr_site}/accountability").json()
    assert report["delivered"] == 0 and set(report["counts"].values()) == {0}
    assert api.get("qa1", "/sites/00000000-0000-4000-8000-000000000000/accountability").status_code == 404
