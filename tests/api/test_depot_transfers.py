"""A transfer of kits between two depots over HTTP, on both stores: shipped by the sending depot,
received into the other depot's stock by its own staff, visible in stock and custody."""

from __future__ import annotations

from ledger.gs1 import with_check_digit
from ledger.values import Role
from tests.api.conftest import Api
from tests.builders import Program, sscc


def test_kits_move_from_one_depot_to_another(api: Api, program: Program) -> None:
    made = api.post(
        "admin1",
        "/locations",
        {"gln": with_check_digit("400000000009"), "kind": "depot", "name": "Depot East", "country": "DE"},
    )
    assert made.status_code == 201, made.text
    east = made.json()["id"]
    api.add_user("depot9", Role.DEPOT, "Dana East", (east,))
    kits = [str(k) for k in program.kits("K00007", "K00008")]
    body = {
        "shipment_number": "T-1",
        "sscc": sscc(40),
        "from_id": str(program.depot),
        "to_id": east,
        "kit_ids": kits,
        "min_celsius": "2",
        "max_celsius": "8",
    }
    assert api.post("depot9", "/shipments", body).status_code == 403  # not bound to the sender
    shipped = api.post("depot1", "/shipments", body)
    assert shipped.status_code == 201, shipped.text
    shipment = shipped.json()["id"]
    receipt = {"outcomes": {"K00007": "received", "K00008": "received"}, "logger_min": "3", "logger_max": "7"}
    path = f"/sites/{east}/shipments/{shipment}/receipt"
    refused = api.post("depot1", path, receipt)
    assert refused.status_code == 403 and refused.json()["code"] == "not_bound_here", refused.text
    assert api.post("depot9", path, receipt).status_code == 200

    stock = api.get("recall1", "/inventory/kits").json()
    east_stock = next(p for p in stock["places"] if p["place"]["name"] == "Depot East")["by_status"]
    assert east_stock == {"available": 2}
    steps = api.get("recall1", f"/custody/kits/{kits[0]}").json()["steps"]
    assert [(s["action"], (s["to_place"] or {}).get("name")) for s in steps[-2:]] == [
        ("shipped", "Depot East"),
        ("received", "Depot East"),
    ]
