"""A drug-product lot made at the plant is packaged at the depot only after a recorded transfer, over
HTTP on both stores: sent by the plant's staff, received by the depot's, visible in stock, the audit
trail and the EPCIS export."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from epcis.ids import sgln
from ledger.commands import ReleaseLot
from ledger.values import Meaning, sign
from tests.api.conftest import Api
from tests.builders import DEPOT_GLN, KIT_GTIN, Program, actors

CHECKER = {"principal": "mfg2", "password": "correct horse battery staple"}


def a_new_lot(program: Program) -> UUID:
    """DP-2 (97 tablets), made and released at the plant."""
    _, dp = program.formulate_batch([(program.api, "100 g"), (program.excipient, "100 g")])
    program.ledger.handle(
        ReleaseLot(lot_id=dp, signature=sign(actors.qa, Meaning.RELEASED), results_ref="QC-DP-2"), actors.qa
    )
    return dp


def packaging(program: Program, dp: UUID) -> dict[str, Any]:
    return {
        "batch_number": "P-2",
        "trial_id": str(program.trial),
        "location_id": str(program.depot),
        "kit_gtin": KIT_GTIN,
        "label_version": "v1",
        "arms": [{"treatment": "A", "dp_lot_id": str(dp), "units_per_kit": 10, "units_issued": 20}],
        "kit_list": [{"kit_number": "K20001", "treatment": "A"}, {"kit_number": "K20002", "treatment": "A"}],
        "checked_by": CHECKER,
    }


def stock_of(api: Api, dp: UUID) -> dict[str, Any]:
    answer = api.get("qa1", "/inventory/lots", params={"lot_id": str(dp), "after": api.position()})
    assert answer.status_code == 200, answer.text
    (row,) = answer.json()["lots"]
    return dict(row)


def test_a_lot_is_transferred_to_the_packaging_depot_and_packaged_there(api: Api, program: Program) -> None:
    dp = a_new_lot(program)
    body = packaging(program, dp)
    head = api.head()
    refused = api.post("mfg1", "/packaging-runs", body)
    assert refused.status_code == 409 and refused.json()["code"] == "lot_not_here", refused.text
    assert "transfer it here" in refused.json()["message"]

    transfer = {"transfer_number": "TR-2", "from_id": str(program.plant), "to_id": str(program.depot)}
    not_bound = api.post("depot1", f"/lots/{dp}/transfers", transfer)  # the depot does not hold it
    assert not_bound.status_code == 403 and not_bound.json()["code"] == "not_bound_here", not_bound.text
    to_a_site = api.post("mfg1", f"/lots/{dp}/transfers", {**transfer, "to_id": str(program.site)})
    assert to_a_site.status_code == 422 and to_a_site.json()["field"] == "to_id", to_a_site.text
    assert api.head() == head

    sent = api.post("mfg1", f"/lots/{dp}/transfers", transfer)
    assert sent.status_code == 200, sent.text
    travelling = stock_of(api, dp)
    assert travelling["location"]["id"] == str(program.plant)  # listed where it left until received
    assert travelling["in_transit_to"]["id"] == str(program.depot)
    in_transit = api.post("mfg1", "/packaging-runs", body)
    assert in_transit.status_code == 409 and in_transit.json()["code"] == "lot_not_here", in_transit.text

    wrong_place = api.post("mfg1", f"/lots/{dp}/transfers/receipt", {"location_id": str(program.plant)})
    assert wrong_place.status_code == 409 and wrong_place.json()["code"] == "lot_not_here", wrong_place.text
    received = api.post("depot1", f"/lots/{dp}/transfers/receipt", {"location_id": str(program.depot)})
    assert received.status_code == 200, received.text
    again = api.post("depot1", f"/lots/{dp}/transfers/receipt", {"location_id": str(program.depot)})
    assert again.status_code == 409 and again.json()["code"] == "lot_not_here", again.text
    arrived = stock_of(api, dp)
    assert (arrived["location"]["id"], arrived["in_transit_to"], arrived["remaining"]) == (
        str(program.depot),
        None,
        "97",
    )

    packaged = api.post("mfg1", "/packaging-runs", body)
    assert packaged.status_code == 201, packaged.text
    assert stock_of(api, dp)["remaining"] == "77"

    trail = api.get("qa1", f"/audit/{dp}", params={"after": api.position()}).json()["entries"]["items"]
    steps = [(e["event"], e["principal"]) for e in trail]
    assert ("TransferShipped", "mfg1") in steps and ("TransferReceived", "depot1") in steps, steps

    hold = {"reason": "stability pull out of trend"}
    assert api.post("qa1", f"/lots/{dp}/hold", hold).status_code == 200  # QA decides where it is now
    export = api.get("insp1", "/epcis/events/export")
    assert export.status_code == 200, export.text
    moves = [e for e in export.json()["epcisBody"]["eventList"] if e.get("lotline:transferNumber") == "TR-2"]
    assert [(e["bizStep"], e["disposition"]) for e in moves] == [("shipping", "in_transit")]
    assert moves[0]["quantityList"][0]["quantity"] == 97
    (held,) = [e for e in export.json()["epcisBody"]["eventList"] if e.get("bizStep") == "holding"]
    assert held["bizLocation"]["id"] == sgln(DEPOT_GLN)  # not the plant it was made at


def test_a_lot_that_arrives_damaged_is_on_hold_until_qa_decides(api: Api, program: Program) -> None:
    dp = a_new_lot(program)
    transfer = {"transfer_number": "TR-3", "from_id": str(program.plant), "to_id": str(program.depot)}
    assert api.post("mfg1", f"/lots/{dp}/transfers", transfer).status_code == 200
    path = f"/lots/{dp}/transfers/receipt"
    no_remarks = api.post("depot1", path, {"location_id": str(program.depot), "intact": False})
    assert no_remarks.status_code == 422 and no_remarks.json()["field"] == "remarks", no_remarks.text
    damaged = {"location_id": str(program.depot), "intact": False, "remarks": "drum dented, seal intact"}
    assert api.post("depot1", path, damaged).status_code == 200
    assert stock_of(api, dp)["lot"]["status"] == "on_hold"
    body = packaging(program, dp)
    refused = api.post("mfg1", "/packaging-runs", body)
    assert refused.status_code == 409 and "status is on_hold" in refused.json()["message"], refused.text
