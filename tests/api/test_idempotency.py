"""Sites on flaky networks: a receipt retried with the same Idempotency-Key is answered once and
recorded once; a key reused for another request is refused; a receipt that names unknown kits, kits
of another shipment, or a shipment already received is refused whole, naming each kit."""

from __future__ import annotations

from tests.api.conftest import Api
from tests.builders import Program


def receipt(*numbers: str, outcome: str = "received") -> dict:
    return {"outcomes": dict.fromkeys(numbers, outcome), "logger_min": "3", "logger_max": "7"}


def test_the_same_key_and_body_returns_the_first_answer_and_records_nothing_new(
    api: Api, program: Program
) -> None:
    shipment = program.ship(["K00001", "K00002"])
    path = f"/sites/{program.site}/shipments/{shipment}/receipt"
    first = api.post("site1", path, receipt("K00001", "K00002"), headers={"Idempotency-Key": "r-1"})
    assert first.status_code == 200, first.text
    assert [e["version"] for e in first.json()["events"]] == [2, 3, 3]  # shipment, then each kit
    head = api.head()
    assert head[0] == first.json()["events"][-1]["seq"]
    for _ in range(3):
        again = api.post("site1", path, receipt("K00001", "K00002"), headers={"Idempotency-Key": "r-1"})
        assert again.status_code == 200
        assert again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
    # the same body with its keys in another order is the same request
    reordered = {
        "logger_max": "7",
        "logger_min": "3",
        "outcomes": {"K00002": "received", "K00001": "received"},
    }
    assert api.post("site1", path, reordered, headers={"Idempotency-Key": "r-1"}).json() == first.json()
    assert api.head() == head


def test_the_same_key_with_another_body_is_refused(api: Api, program: Program) -> None:
    shipment = program.ship(["K00001", "K00002"])
    path = f"/sites/{program.site}/shipments/{shipment}/receipt"
    assert (
        api.post("site1", path, receipt("K00001", "K00002"), headers={"Idempotency-Key": "k"}).status_code
        == 200
    )
    head = api.head()
    other = api.post(
        "site1", path, receipt("K00001", "K00002", outcome="damaged"), headers={"Idempotency-Key": "k"}
    )
    assert other.status_code == 409
    assert other.json()["code"] == "idempotency_conflict" and other.json()["idempotency_key"] == "k"
    assert api.head() == head


def test_keys_are_per_user(api: Api, program: Program) -> None:
    program.ship(["K00001"])
    path = f"/lots/{program.api}/hold"
    assert api.post("qa1", path, {"reason": "a"}, headers={"Idempotency-Key": "same"}).status_code == 200
    # another user's identical key is a different key: the request runs (and is refused by the lot's state
    # only if the rule says so; holding twice is allowed or refused by the ledger, not by the key)
    answer = api.post("qa2", path, {"reason": "b"}, headers={"Idempotency-Key": "same"})
    assert answer.status_code != 409 or answer.json()["code"] != "idempotency_conflict"


def test_a_failed_request_releases_its_key_so_a_corrected_retry_can_use_it(
    api: Api, program: Program
) -> None:
    shipment = program.ship(["K00001", "K00002"])
    path = f"/sites/{program.site}/shipments/{shipment}/receipt"
    head = api.head()
    incomplete = api.post("site1", path, receipt("K00001"), headers={"Idempotency-Key": "x"})
    assert incomplete.status_code == 409 and api.head() == head
    # a failure is not stored: the same key with the complete body now runs
    assert (
        api.post("site1", path, receipt("K00001", "K00002"), headers={"Idempotency-Key": "x"}).status_code
        == 200
    )


def test_a_receipt_naming_unknown_or_foreign_kits_is_refused_whole_and_names_them(
    api: Api, program: Program
) -> None:
    shipment = program.ship(["K00001", "K00002"])
    program.ship(["K00003"], shipment_number="S-2", serial=2)
    path = f"/sites/{program.site}/shipments/{shipment}/receipt"
    head = api.head()
    answer = api.post("site1", path, receipt("K00001", "K00003", "K99999"))
    assert answer.status_code == 409
    body = answer.json()
    assert body["code"] == "receipt_mismatch" and body["shipment_number"] == "S-1"
    assert sorted((p["kit_number"], p["reason"]) for p in body["problems"]) == [
        ("K00002", "not accounted for in the receipt"),
        ("K00003", "not in this shipment"),
        ("K99999", "not in this shipment"),
    ]
    assert api.head() == head


def test_a_shipment_received_once_cannot_be_received_again(api: Api, program: Program) -> None:
    shipment = program.ship(["K00001"])
    path = f"/sites/{program.site}/shipments/{shipment}/receipt"
    assert api.post("site1", path, receipt("K00001")).status_code == 200
    head = api.head()
    again = api.post("site1", path, receipt("K00001"))
    assert again.status_code == 409
    assert again.json()["code"] == "shipment_not_open" and again.json()["status"] == "received"
    assert api.head() == head


def test_an_idempotency_key_must_be_printable(api: Api, program: Program) -> None:
    shipment = program.ship(["K00001"])
    path = f"/sites/{program.site}/shipments/{shipment}/receipt"
    answer = api.post("site1", path, receipt("K00001"), headers={"Idempotency-Key": "has space"})
    assert answer.status_code == 422 and answer.json()["field"] == "header.Idempotency-Key"
