"""What a site (and any client) can list over the API without learning ids out of band, on both
stores: its inbound shipments, newest first and by status; the receipt it confirmed, kit by kit; the
recalls that concern it; and a kit found by the number on its label alone."""

from __future__ import annotations

from typing import Any

from ledger.commands import Arm, Package
from ledger.gs1 import with_check_digit
from tests.api.conftest import Api, signature
from tests.builders import KIT_GTIN, Program, actors


def ok(answer: Any, status: int = 200) -> Any:
    assert answer.status_code == status, answer.text
    return answer.json()


def test_a_site_lists_its_inbound_shipments_and_sees_what_it_confirmed(api: Api, program: Program) -> None:
    first = program.ship(["K00001", "K00002", "K00003"], shipment_number="S-1", serial=1)
    second = program.ship(["K00004"], shipment_number="S-2", serial=2)
    receipt: dict[str, Any] = {
        "outcomes": {"K00001": "received", "K00002": "damaged", "K00003": "missing"},
        "logger_min": "3.1", "logger_max": "7.9",
        "remarks": {"K00001": "fine", "K00002": "box crushed, seal intact"},
    }
    path = f"/sites/{program.site}/shipments/{first}/receipt"
    head = api.head()
    refused = api.post("site1", path, receipt)  # a remark on a kit received intact
    assert refused.status_code == 409 and "damaged or missing" in refused.text
    assert api.head() == head
    receipt["remarks"] = {"K00002": "box crushed, seal intact", "K00003": "not in the shipper"}
    ok(api.post("site1", path, receipt))

    listed = ok(api.get("site1", f"/sites/{program.site}/shipments"))
    assert [s["shipment_number"] for s in listed["shipments"]] == ["S-2", "S-1"]  # newest first
    assert listed["total"] == 2 and [s["kits"] for s in listed["shipments"]] == [1, 3]
    assert [s["status"] for s in listed["shipments"]] == ["in_transit", "received"]
    assert listed["shipments"][0]["from_place"]["id"] == str(program.depot)
    waiting = ok(api.get("site1", f"/sites/{program.site}/shipments", params={"status": "in_transit"}))
    assert [s["shipment_id"] for s in waiting["shipments"]] == [str(second)]
    assert api.get("site2", f"/sites/{program.site}/shipments").status_code == 403  # not theirs
    assert api.get("site1", f"/sites/{program.site}/shipments", params={"status": "lost"}).status_code == 422

    seen = ok(api.get("site1", f"/sites/{program.site}/shipments/{first}"))
    assert seen["receipt"]["outcomes"] == receipt["outcomes"]
    assert (seen["receipt"]["logger_min"], seen["receipt"]["logger_max"]) == ("3.1", "7.9")
    assert seen["receipt"]["received_by"] == "Sam Site"
    assert seen["receipt"]["remarks"] == receipt["remarks"]
    assert ok(api.get("site1", f"/sites/{program.site}/shipments/{second}"))["receipt"] is None


def test_a_site_learns_which_recalls_concern_it(api: Api, program: Program) -> None:
    program.at_site(["K00001"])
    assert ok(api.get("site1", f"/sites/{program.site}/recalls"))["recalls"] == []
    opened = ok(api.post("qa1", "/recalls", {
        "recall_number": "RC-7", "lot_ids": [str(program.api)], "reason": "impurity",
        "classification": "class_ii", "scope": "all_kits", "signature": signature("approved"),
    }), 201)
    mine = ok(api.get("site1", f"/sites/{program.site}/recalls"))["recalls"]
    assert [(r["recall_id"], r["kits"], r["outstanding"], r["acknowledged_at"]) for r in mine] == [
        (opened["id"], 1, 1, None)
    ]
    assert ok(api.get("site2", f"/sites/{program.fr_site}/recalls"))["recalls"] == []  # no kit there
    assert api.get("site2", f"/sites/{program.site}/recalls").status_code == 403
    depot = ok(api.get("depot1", f"/sites/{program.depot}/recalls"))["recalls"]
    assert depot[0]["recall_number"] == "RC-7" and depot[0]["kits"] == 9


def test_a_kit_is_found_by_its_number_alone_where_one_kit_carries_it(api: Api, program: Program) -> None:
    found = ok(api.get("recall1", "/ids/kit", params={"number": "K00001"}))
    assert found["id"] == str(program.kit("K00001"))
    missing = api.get("recall1", "/ids/kit", params={"number": "K99999"})
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    # A second trial's run with its own kit GTIN uses the same number: the number alone is ambiguous.
    other_gtin = with_check_digit(KIT_GTIN[:-2] + "9")
    api.ledger.handle(Package(
        batch_number="P-9", trial_id=program.trial, location_id=program.depot, kit_gtin=other_gtin,
        label_version="v1", arms=[Arm("A", program.dp, 10, 10)], kit_list=[("K00001", "A")],
        checked_by=actors.mfg2,
    ), actors.mfg)
    both = api.get("recall1", "/ids/kit", params={"number": "K00001"})
    assert both.status_code == 409 and both.json()["code"] == "ambiguous_kit_number"
    assert sorted(c["gtin"] for c in both.json()["candidates"]) == sorted([KIT_GTIN, other_gtin])
    exact = ok(api.get("recall1", "/ids/kit", params={"number": "K00001", "gtin": other_gtin}))
    assert exact["id"] != found["id"]


def test_a_place_lists_its_kits_with_their_flags_a_page_at_a_time(api: Api, program: Program) -> None:
    shipment = program.ship(["K00001", "K00002", "K00003", "K00004"])
    ok(api.post("site1", f"/sites/{program.site}/shipments/{shipment}/receipt", {
        "outcomes": {"K00001": "received", "K00002": "damaged", "K00003": "missing", "K00004": "received"},
        "remarks": {"K00002": "box crushed", "K00003": "not in the shipper"},
    }))
    path = f"/locations/{program.site}/kits"
    kits = ok(api.get("site1", path))
    assert (kits["total"], kits["limit"], kits["offset"]) == (4, 100, 0)
    listed = {k["kit"]["kit_number"]: k for k in kits["kits"]}
    assert list(listed) == ["K00001", "K00002", "K00003", "K00004"]  # by kit number
    assert {n: k["kit"]["status"] for n, k in listed.items()} == {
        "K00001": "received", "K00002": "damaged", "K00003": "missing", "K00004": "received"
    }
    assert not any(k["recalled"] or k["expired"] or k["quarantined"] for k in listed.values())
    assert listed["K00001"]["expires_in_days"] > 0 and listed["K00001"]["kit"]["treatment"] is None
    damaged = ok(api.get("site1", path, params={"status": "damaged"}))["kits"]
    assert [k["kit"]["kit_number"] for k in damaged] == ["K00002"]
    second = ok(api.get("site1", path, params={"limit": 2, "offset": 2}))
    assert second["total"] == 4 and [k["kit"]["kit_number"] for k in second["kits"]] == ["K00003", "K00004"]
    assert api.get("site2", path).status_code == 403  # not theirs, even typed
    assert api.get("site1", path, params={"status": "lost"}).status_code == 422
    assert ok(api.get("depot1", f"/locations/{program.depot}/kits"))["total"] == 6  # K00005-K00010

    ok(api.post("qa1", "/recalls", {
        "recall_number": "RC-8", "lot_ids": [str(program.api)], "reason": "impurity",
        "classification": "class_ii", "scope": "all_kits", "signature": signature("approved"),
    }), 201)
    after = {k["kit"]["kit_number"]: k for k in ok(api.get("site1", path))["kits"]}
    assert all(k["recalled"] for k in after.values())  # every kit of the run, whatever its arm
    quarantined = [n for n, k in after.items() if k["quarantined"]]
    assert quarantined == [n for n, k in after.items() if k["kit"]["status"] == "quarantined"]
