"""A mock recall over the API, end to end: open, site acknowledgments, kit reports (one at a time and
in batches), returns sent back to the depot and received there, destruction at the depot, a kit
missing at one site justified by QA, closure; the status figures are checked at every step, the
returned kits' custody is followed, and the report is rendered.

Program LTL-101 with 20 blinded kits of run P-1 (12 active from DP-1, made from API-1; 8 placebo),
released for DE and FR:
  K00001-K00006  Site 101 (DE, site1), received; K00001 dispensed to SUBJ-1
  K00007-K00010  Site 201 (FR, site2), received
  K00011-K00012  in transit to Site 101 (S-3)
  K00013-K00020  at the depot
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from ledger.commands import ConfirmReceipt, Dispense
from ledger.domain import Shipment
from ledger.domain.recall import Recall
from tests.api.conftest import PLACES, USERS, Api, signature
from tests.builders import Program, actors, sscc

KITS = [f"K{i:05d}" for i in range(1, 21)]


@pytest.fixture
def spread(empty_api: Api) -> Program:
    program = Program(empty_api.ledger)
    program.reference().materials().formulate().placebo()
    program.package(active_kits=12, placebo_kits=8)
    program.release_run(countries=("DE", "FR"))
    for principal, (role, name) in USERS.items():
        empty_api.add_user(principal, role, name, PLACES.get(principal, ()))
    L = program.ledger
    program.at_site(KITS[:6])
    L.handle(Dispense(kit_id=program.kit("K00001"), site_id=program.site, subject="SUBJ-1"), actors.site)
    fr = program.ship(KITS[6:10], shipment_number="S-2", serial=2, to=program.fr_site)
    L.handle(
        ConfirmReceipt(
            shipment_id=fr,
            site_id=program.fr_site,
            outcomes=dict.fromkeys(KITS[6:10], "received"),
        ),
        actors.site,
    )
    program.ship(KITS[10:12], shipment_number="S-3", serial=3)
    return program


def status(api: Api, recall: str) -> dict[str, Any]:
    r = api.get("recall1", f"/recalls/{recall}/status")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def place(body: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(p for p in body["places"] if p["name"] == name)
    return found


def figures(body: dict[str, Any], name: str) -> tuple[int, int, int, int]:
    p = place(body, name)
    return p["kits"], p["reported"], p["reconciled"], p["outstanding"]


def ok(r: Any, code: int = 200) -> Any:
    assert r.status_code == code, r.text
    return r.json() if "json" in r.headers.get("content-type", "") else r.text


def custody_actions(api: Api, kit: UUID) -> list[str]:
    r = api.get("recall1", f"/custody/kits/{kit}")
    assert r.status_code == 200, r.text
    return [step["action"] for step in r.json()["steps"]]


def report(
    api: Api, who: str, recall: str, site: UUID, kit: UUID, outcome: str, subject: str | None = None
) -> Any:
    body: dict[str, Any] = {"outcome": outcome}
    if subject:
        body["subject"] = subject
    return api.post(who, f"/recalls/{recall}/sites/{site}/kits/{kit}/report", body)


def test_mock_recall_from_opening_to_closure(empty_api: Api, spread: Program, tmp_path: Path) -> None:
    api, p = empty_api, spread
    # 1. QA opens the recall of API-1, signed
    opened = ok(
        api.post(
            "qa1",
            "/recalls",
            {
                "recall_number": "RC-2026-001",
                "lot_ids": [str(p.api)],
                "reason": "API-1: nitrosamine above the acceptable intake",
                "classification": "class_ii",
                "scope": "all_kits",
                "signature": signature("approved"),
            },
        ),
        201,
    )
    rid = opened["id"]
    s = status(api, rid)
    assert (s["kits"], s["reported"], s["reconciled"], s["outstanding"]) == (20, 0, 0, 20)
    assert (s["places_notified"], s["places_acknowledged"], s["reconciled_percent"]) == (3, 0, 0.0)
    assert figures(s, "Site 101") == (8, 0, 0, 8)
    assert figures(s, "Site 201") == (4, 0, 0, 4)
    assert figures(s, "Depot") == (8, 0, 0, 8)
    assert [(t["shipment_id"], t["kits"]) for t in s["shipments_in_transit"]] == [
        (str(p.shipments["S-3"]), 2)
    ]
    assert s["reconciled_at"] is None and s["seconds_to_reconciliation"] is None

    # 2. affected kits can neither ship nor be dispensed
    refused = api.post(
        "depot1",
        "/shipments",
        {
            "shipment_number": "S-9",
            "sscc": sscc(9),
            "from_id": str(p.depot),
            "to_id": str(p.site),
            "kit_ids": [str(p.kit("K00013"))],
            "min_celsius": "2",
            "max_celsius": "8",
        },
    )
    assert refused.status_code == 409 and refused.json()["problems"][0]["code"] == "lot_not_usable"
    refused = api.post("site1", f"/sites/{p.site}/kits/{p.kit('K00002')}/dispensing", {"subject": "SUBJ-2"})
    assert refused.status_code == 409 and refused.json()["code"] == "lot_not_usable"

    # 3. each site sees only its own kits, blinded; not the overall status
    tasks = ok(api.get("site1", f"/recalls/{rid}/sites/{p.site}/tasks"))
    assert [k["kit_number"] for k in tasks["kits"]] == KITS[:6] + KITS[10:12]
    assert all(
        set(k) == {"kit_id", "kit_number", "status_at_open", "outcome", "subject", "reported_at"}
        for k in tasks["kits"]
    )
    assert api.get("site1", f"/recalls/{rid}/sites/{p.fr_site}/tasks").status_code == 403
    assert api.get("site1", f"/recalls/{rid}/status").status_code == 403

    # 4. acknowledgments: both sites and the depot
    ok(api.post("site1", f"/recalls/{rid}/sites/{p.site}/acknowledgement"))
    assert api.post("site1", f"/recalls/{rid}/sites/{p.site}/acknowledgement").status_code == 409
    ok(api.post("site2", f"/recalls/{rid}/sites/{p.fr_site}/acknowledgement"))
    s = status(api, rid)
    assert (s["places_acknowledged"], s["acknowledged_percent"]) == (2, 66.7)
    ok(api.post("depot1", f"/recalls/{rid}/sites/{p.depot}/acknowledgement"))
    s = status(api, rid)
    assert (s["places_acknowledged"], s["acknowledged_percent"]) == (3, 100.0)

    # 5. Site 101: K00001 dispensed; then one batch: K00002-K00004 returned (sent back to the depot),
    #    K00005-K00006 quarantined; the shipment in transit arrives and its two kits are quarantined
    assert report(api, "site1", rid, p.site, p.kit("K00001"), "dispensed", "SUBJ-7").status_code == 422
    ok(report(api, "site1", rid, p.site, p.kit("K00001"), "dispensed", "SUBJ-1"))
    assert report(api, "site1", rid, p.site, p.kit("K00007"), "quarantined").status_code == 409
    lines = [{"kit_id": str(p.kit(n)), "outcome": "returned"} for n in ("K00002", "K00003", "K00004")]
    lines += [{"kit_id": str(p.kit(n)), "outcome": "quarantined"} for n in ("K00005", "K00006")]
    # a batch with one kit of another site (K00007) and one already reported (K00001) is refused
    # whole, each refused kit named; nothing of it is recorded
    bad = [
        *lines,
        {"kit_id": str(p.kit("K00007")), "outcome": "quarantined"},
        {"kit_id": str(p.kit("K00001")), "outcome": "quarantined"},
    ]
    refused = api.post("site1", f"/recalls/{rid}/sites/{p.site}/reports", {"kits": bad})
    assert refused.status_code == 409, refused.text
    assert {(k["kit_number"], k["code"]) for k in refused.json()["problems"]} == {
        ("K00007", "recall_wrong_place"),
        ("K00001", "invalid_transition"),
    }
    assert figures(status(api, rid), "Site 101") == (8, 1, 1, 7)
    assert custody_actions(api, p.kit("K00002"))[-1] == "received"
    sent = ok(api.post("site1", f"/recalls/{rid}/sites/{p.site}/reports", {"kits": lines}))
    assert len(sent["events"]) == 5 + 3 + 2  # five recall reports, three kits sent back, two quarantined
    s = status(api, rid)
    # only the dispensed kit counts: three are on their way back, two held at the site
    assert figures(s, "Site 101") == (8, 6, 1, 7)
    assert s["outcomes"] == {"dispensed": 1, "quarantined": 2, "returned": 3}
    # a returned kit is on its way back to the depot: out of the site's hands, not yet the depot's
    assert custody_actions(api, p.kit("K00002"))[-1] == "sent_back"
    returning = api.get("recall1", f"/custody/kits/{p.kit('K00002')}").json()["steps"][-1]
    assert (returning["from_place"]["name"], returning["to_place"]["name"]) == ("Site 101", "Depot")
    refused = api.post("site1", f"/sites/{p.site}/kits/{p.kit('K00002')}/return", {"condition": "unused"})
    assert refused.status_code == 409
    p.receive_all(p.shipments["S-3"], KITS[10:12])
    for n in ("K00011", "K00012"):
        ok(report(api, "site1", rid, p.site, p.kit(n), "quarantined"))
    s = status(api, rid)
    assert figures(s, "Site 101") == (8, 8, 1, 7)
    assert (s["reported"], s["reconciled"], s["outstanding"]) == (8, 1, 19)

    # 6. the depot receives Site 101's three returns: in its hands, returned, accounted for
    site101_returns = [str(p.kit(n)) for n in ("K00002", "K00003", "K00004")]
    refused = api.post(
        "depot1", f"/recalls/{rid}/returns", {"depot_id": str(p.depot), "kit_ids": [str(p.kit("K00005"))]}
    )
    assert refused.status_code == 409 and refused.json()["code"] == "invalid_transition"
    refused = api.post(
        "site1", f"/recalls/{rid}/returns", {"depot_id": str(p.depot), "kit_ids": site101_returns}
    )
    assert refused.status_code == 403
    ok(api.post("depot1", f"/recalls/{rid}/returns", {"depot_id": str(p.depot), "kit_ids": site101_returns}))
    s = status(api, rid)
    assert figures(s, "Site 101") == (8, 8, 4, 4)  # its four quarantined kits are still there
    assert place(s, "Site 101")["reconciled_percent"] == 50.0
    assert custody_actions(api, p.kit("K00002"))[-2:] == ["sent_back", "received_back"]
    again = api.post(
        "depot1", f"/recalls/{rid}/returns", {"depot_id": str(p.depot), "kit_ids": site101_returns}
    )
    assert again.status_code == 409
    assert {k["kit_number"] for k in again.json()["problems"]} == {"K00002", "K00003", "K00004"}

    # 7. Site 201: three returned and received at the depot; K00010 cannot be found
    site201_returns = [str(p.kit(n)) for n in ("K00007", "K00008", "K00009")]
    ok(
        api.post(
            "site2",
            f"/recalls/{rid}/sites/{p.fr_site}/reports",
            {"kits": [{"kit_id": k, "outcome": "returned"} for k in site201_returns]},
        )
    )
    ok(api.post("depot1", f"/recalls/{rid}/returns", {"depot_id": str(p.depot), "kit_ids": site201_returns}))
    s = status(api, rid)
    assert figures(s, "Site 201") == (4, 3, 3, 1)

    # 8. the depot quarantines its eight kits; QA authorises the destruction of those and of the six
    #    returned kits; the depot destroys them through the recall, which records each with its
    #    certificate (a kit it does not hold, or without QA's authorisation, is refused)
    depot_kits = [str(p.kit(n)) for n in KITS[12:]]
    ok(
        api.post(
            "depot1",
            f"/recalls/{rid}/sites/{p.depot}/reports",
            {"kits": [{"kit_id": k, "outcome": "quarantined"} for k in depot_kits]},
        )
    )
    # the depot's stock answers show them quarantined, no longer available
    stock = ok(api.get("recall1", "/inventory/kits"))
    at_depot = next(p for p in stock["places"] if p["place"]["name"] == "Depot")["by_status"]
    assert at_depot.get("quarantined") == 8 and "available" not in at_depot
    doomed = depot_kits + site101_returns + site201_returns
    destruction = {"place_id": str(p.depot), "certificate": "DC-RC-1", "method": "incineration"}
    refused = api.post("depot1", f"/recalls/{rid}/destructions", {**destruction, "kit_ids": doomed})
    assert refused.status_code == 409 and len(refused.json()["problems"]) == 14
    ok(
        api.post(
            "qa1",
            "/kits/destruction-authorisations",
            {
                "kit_ids": doomed,
                "signature": signature("authorised_destruction"),
                "reason": "recall RC-2026-001",
            },
        )
    )
    refused = api.post(
        "depot1", f"/recalls/{rid}/destructions", {**destruction, "kit_ids": [str(p.kit("K00005"))]}
    )
    assert refused.status_code == 409 and refused.json()["code"] == "kit_not_usable"
    s = status(api, rid)
    assert (s["reconciled"], s["outcomes"]["received_at_depot"]) == (15, 6)  # 4 + 3 + the depot's 8
    ok(api.post("depot1", f"/recalls/{rid}/destructions", {**destruction, "kit_ids": doomed}))
    s = status(api, rid)
    assert figures(s, "Depot") == (8, 8, 8, 0)
    assert (s["reconciled"], s["outstanding"], s["reconciled_percent"]) == (15, 5, 75.0)
    assert s["outcomes"] == {"destroyed": 14, "dispensed": 1, "quarantined": 4}
    assert custody_actions(api, p.kit("K00002"))[-1] == "destroyed"

    # kits quarantined at a site are held there, not recovered: closure is refused naming them and where
    refused = api.post("qa1", f"/recalls/{rid}/closure", {"signature": signature("approved")})
    assert refused.status_code == 409 and refused.json()["code"] == "recall_outstanding"
    assert refused.json()["kit_numbers"] == ["K00005", "K00006", "K00010", "K00011", "K00012"]
    assert refused.json()["places"] == {"Site 101": 4, "Site 201": 1}
    assert "(4 at Site 101; 1 at Site 201)" in refused.json()["message"]

    # 9. Site 101 destroys its four quarantined kits on site, through the recall, once QA authorised
    #    it; not through the plain destruction route, and not at a place it is not bound to
    on_site = [str(p.kit(n)) for n in ("K00005", "K00006", "K00011", "K00012")]
    outstanding = ok(api.get("recall1", f"/recalls/{rid}/outstanding"))
    assert sorted(k["kit_number"] for k in outstanding["items"]) == [
        "K00005", "K00006", "K00010", "K00011", "K00012"
    ]
    ok(
        api.post(
            "qa1",
            "/kits/destruction-authorisations",
            {"kit_ids": on_site, "signature": signature("authorised_destruction"), "reason": "recall"},
        )
    )
    plain = {"kit_ids": on_site[:1], "certificate": "DC-S101-1", "method": "incineration"}
    refused = api.post("site1", f"/locations/{p.site}/destructions", plain)
    assert refused.status_code == 409, refused.text
    assert f"POST /recalls/{rid}/destructions" in refused.json()["message"]
    assert refused.json()["problems"][0]["code"] == "kit_under_recall"
    at_site = {"place_id": str(p.site), "certificate": "DC-S101-1", "method": "incineration"}
    elsewhere = api.post("site2", f"/recalls/{rid}/destructions", {**at_site, "kit_ids": on_site})
    assert elsewhere.status_code == 403, elsewhere.text
    ok(api.post("site1", f"/recalls/{rid}/destructions", {**at_site, "kit_ids": on_site}))
    s = status(api, rid)
    assert figures(s, "Site 101") == (8, 8, 8, 0)
    assert (s["reconciled"], s["outstanding"], s["reconciled_percent"]) == (19, 1, 95.0)
    assert s["outcomes"] == {"destroyed": 18, "dispensed": 1}
    outstanding = ok(api.get("recall1", f"/recalls/{rid}/outstanding"))
    assert [k["kit_number"] for k in outstanding["items"]] == ["K00010"] and outstanding["total"] == 1

    # 10. closure is refused while K00010 is unaccounted for
    refused = api.post("qa1", f"/recalls/{rid}/closure", {"signature": signature("approved")})
    assert refused.status_code == 409 and refused.json()["code"] == "recall_outstanding"
    assert refused.json()["kit_numbers"] == ["K00010"]

    # 11. QA justifies the missing kit, signed: every kit accounted for
    assert (
        api.post(
            "site2",
            f"/recalls/{rid}/kits/{p.kit('K00010')}/justification",
            {"justification": "x", "signature": signature("approved")},
        ).status_code
        == 403
    )
    ok(
        api.post(
            "qa1",
            f"/recalls/{rid}/kits/{p.kit('K00010')}/justification",
            {
                "justification": "Not found after two site searches; site 201 deviation DV-88",
                "signature": signature("approved"),
            },
        )
    )
    s = status(api, rid)
    assert (s["reconciled"], s["outstanding"], s["reconciled_percent"]) == (20, 0, 100.0)
    assert s["reconciled_at"] is not None and s["seconds_to_reconciliation"] >= 0
    assert s["status"] == "open"

    # 12. QA closes the recall, signed
    ok(api.post("qa1", f"/recalls/{rid}/closure", {"signature": signature("approved")}))
    s = status(api, rid)
    assert s["status"] == "closed" and s["closed_at"] is not None
    recall = api.ledger.get(Recall, UUID(rid))
    assert recall.closed is not None and recall.closed["signature"]["signer"] == "qa1"

    # 13. the report, for an inspector, made against a signed checkpoint of the log
    page = api.get("insp1", f"/recalls/{rid}/report")
    assert "No signed checkpoint of the log exists yet" in page.text
    log = api.client.app.state.transparency  # type: ignore[attr-defined]
    log.keys.generate()
    checkpoint = log.checkpoint()
    page = api.get("insp1", f"/recalls/{rid}/report")
    assert f"tree size {checkpoint.size}" in page.text and "<b>covers</b>" in page.text
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    picture = html[html.index("<svg"):html.index("</svg>")]  # the genealogy picture of the suspect lot
    for node in (f"lot-{p.api}", f"place-{p.site}", f"place-{p.fr_site}"):
        assert f'id="{node}"' in picture, node
    for expected in (
        "RC-2026-001",
        "API-1",
        "DP-1",
        "P-1",
        "Site 101",
        "Site 201",
        "Depot",
        "closed",
        "Not found after two site searches",
        "Quinn QA",
        "Checkpoint",
        "destroyed during the recall",
        "<td>DC-RC-1</td><td>Depot</td><td>incineration</td><td class='n'>14</td>",
        "<td>DC-S101-1</td><td>Site 101</td><td>incineration</td><td class='n'>4</td>",
        "destroyed kits: 14 kit(s), certificate DC-RC-1",
        "Sam Site (site)",  # who reported, in the timeline's row of each report
    ):
        assert expected in html, expected
    assert api.get("site1", f"/recalls/{rid}/report").status_code == 403
    (tmp_path / "recall_report.html").write_text(html)
    assert api.ledger.get(Shipment, p.shipments["S-3"]).status == "received"


def test_a_site_report_retried_with_its_idempotency_key_is_recorded_once(
    empty_api: Api, spread: Program
) -> None:
    api, p = empty_api, spread
    opened = api.post(
        "qa1",
        "/recalls",
        {
            "recall_number": "RC-2026-002",
            "lot_ids": [str(p.api)],
            "reason": "API-1: out of specification",
            "classification": "class_ii",
            "scope": "all_kits",
            "signature": signature("approved"),
        },
    )
    rid = ok(opened, 201)["id"]
    path = f"/recalls/{rid}/sites/{p.site}/reports"
    body = {"kits": [{"kit_id": str(p.kit(n)), "outcome": "returned"} for n in ("K00002", "K00003")]}
    key = {"Idempotency-Key": "site101-recall-report-1"}
    first = api.post("site1", path, body, headers=key)
    events = api.head()[0]
    # the network dropped the answer: the site sends the same request again
    again = api.post("site1", path, body, headers=key)
    assert (again.status_code, again.json()) == (first.status_code, first.json()) == (200, first.json())
    assert api.head()[0] == events
    assert figures(status(api, rid), "Site 101") == (8, 2, 0, 8)
    # without the key a repeat is refused by the rules (already reported), still nothing recorded twice
    assert api.post("site1", path, body).status_code == 409
    assert api.head()[0] == events


def test_a_packaging_run_recalled_for_a_labelling_error(api: Api, program: Program) -> None:
    p = program
    p.at_site(["K00001", "K00002"])
    opened = api.post(
        "qa1",
        "/recalls",
        {
            "recall_number": "RC-LBL-1",
            "run_ids": [str(p.run)],
            "reason": "wrong expiry printed on the kit labels",
            "classification": "class_iii",
            "scope": "all_kits",
            "signature": signature("approved"),
        },
    )
    rid = ok(opened, 201)["id"]
    s = status(api, rid)
    assert s["lots"] == [] and s["suspect_runs"] == [{"run_id": str(p.run), "batch_number": "P-1"}]
    assert s["kits"] == 10 and figures(s, "Site 101")[0] == 2
    refused = api.post(
        "site1", f"/sites/{p.site}/kits/{p.kit('K00001')}/dispensing", {"subject": "SUBJ-1"}
    )
    assert refused.status_code == 409 and refused.json()["code"] == "run_recalled", refused.text
    neither = api.post(
        "qa1",
        "/recalls",
        {
            "recall_number": "RC-LBL-2",
            "reason": "x",
            "classification": "class_iii",
            "scope": "all_kits",
            "signature": signature("approved"),
        },
    )
    assert neither.status_code == 422 and neither.json()["field"] == "lot_ids", neither.text
    page = api.get("insp1", f"/recalls/{rid}/report")
    assert "<th>Suspect packaging runs</th><td>P-1</td>" in page.text
