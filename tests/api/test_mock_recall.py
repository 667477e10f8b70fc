"""A mock recall (EU GMP chapter 8's periodic exercise), over HTTP on both stores: it records the
affected set and every place's tasks like a real recall, the places answer it, and it runs to closure,
while the same kits stay shippable and dispensable; its report says it was an exercise and gives the
time to locate the kits, per place and overall.

Program LTL-101 (tests.builders): K00001-K00003 received at Site 101 (site1), the rest at the depot.
"""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Api, signature
from tests.builders import Program, sscc


def ok(answer: Any, status: int = 200) -> Any:
    assert answer.status_code == status, answer.text
    return answer.json()


def test_a_mock_recall_runs_to_closure_while_its_kits_stay_shippable_and_dispensable(
    api: Api, program: Program
) -> None:
    program.at_site(["K00001", "K00002", "K00003"])
    opened = ok(api.post("qa1", "/recalls", {
        "recall_number": "MOCK-2026-01", "lot_ids": [str(program.api)], "reason": "annual mock recall",
        "classification": "class_ii", "scope": "all_kits", "signature": signature("approved"),
        "exercise": True,
    }), 201)
    rid = opened["id"]
    status = ok(api.get("qa1", f"/recalls/{rid}/status"))
    assert status["exercise"] is True and status["kits"] == 10 and status["outstanding"] == 10
    # Nothing was recalled: the lot is not, and its kits move on as usual.
    recalled = ok(api.get("qa1", "/audit", params={"event": "Recalled"}))
    assert recalled["total"] == 0  # neither the lot nor any run
    dispense = f"/sites/{program.site}/kits/{program.kit('K00001')}/dispensing"
    ok(api.post("site1", dispense, {"subject": "S-01"}))
    shipped = ok(api.post("depot1", "/shipments", {
        "shipment_number": "SH-M1", "sscc": sscc(81), "from_id": str(program.depot),
        "to_id": str(program.site), "kit_ids": [str(program.kit("K00004"))], "min_celsius": "2",
        "max_celsius": "8",
    }), 201)
    assert shipped["events"]

    # The places answer as in a real recall: acknowledge, then report each kit located (or dispensed).
    site, depot = f"/recalls/{rid}/sites/{program.site}", f"/recalls/{rid}/sites/{program.depot}"
    tasks = ok(api.get("site1", f"{site}/tasks"))
    assert tasks["exercise"] is True and len(tasks["kits"]) == 3
    ok(api.post("site1", f"{site}/acknowledgement"))
    moved = api.post("site1", f"{site}/reports", {"kits": [
        {"kit_id": str(program.kit("K00002")), "outcome": "quarantined"},
    ]})
    assert moved.status_code == 422 and "mock recall" in moved.json()["message"]  # an exercise moves nothing
    ok(api.post("site1", f"{site}/reports", {"kits": [
        {"kit_id": str(program.kit("K00001")), "outcome": "dispensed", "subject": "S-01"},
        {"kit_id": str(program.kit("K00002")), "outcome": "located"},
        {"kit_id": str(program.kit("K00003")), "outcome": "located"},
    ]}))
    ok(api.post("depot1", f"{depot}/acknowledgement"))
    at_depot = [f"K{n:05d}" for n in range(4, 11)]
    ok(api.post("depot1", f"{depot}/reports", {"kits": [
        {"kit_id": str(program.kit(k)), "outcome": "located"} for k in at_depot  # K00004 by its shipment
    ]}))
    status = ok(api.get("qa1", f"/recalls/{rid}/status"))
    assert status["outstanding"] == 0 and status["seconds_to_reconciliation"] is not None
    assert all(p["seconds_to_locate"] is not None for p in status["places"])
    ok(api.post("qa1", f"/recalls/{rid}/closure", {"signature": signature("approved")}))

    # The kits it located are still usable: dispensed and shipped after the exercise closed.
    ok(api.post("site1", f"/sites/{program.site}/kits/{program.kit('K00002')}/dispensing", {"subject": "S2"}))
    report = api.get("qa1", f"/recalls/{rid}/report")
    assert report.status_code == 200
    assert "EXERCISE: a mock recall" in report.text and "Time to locate" in report.text
