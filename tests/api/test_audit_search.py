"""What an inspector checks first, over HTTP and the CLI on both stores: late entries need a reason and
are flagged; the audit trail is searched by actor, event, signature meaning, place and time range, as
JSON or CSV, each row tied to the chain by its position and hash; unblinded reads are recorded in the
chain before the answer is given."""

from __future__ import annotations

import csv
import io
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ledger.domain.account import account_id
from ledger.gs1 import with_check_digit
from scripts.cli import main
from tests.api.conftest import Api
from tests.builders import Program, sscc


def search(api: Api, who: str = "insp1", **params: Any) -> dict[str, Any]:
    answer = api.get(who, "/audit", params=params)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def chain_links(api: Api) -> dict[int, str]:
    return {r.seq: r.chain_hash.hex() for r in api.ledger.chain.iter_chain()}


def depot(n: int, **more: Any) -> dict[str, Any]:
    return {"gln": with_check_digit(f"40699990{n:04d}"), "kind": "depot", "name": f"Depot {n}",
            "country": "DE", **more}


def test_a_late_entry_needs_a_reason_and_is_flagged(api: Api, program: Program) -> None:
    three_days_ago = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    head = api.head()
    refused = api.post("admin1", "/locations", depot(1, occurred_at=three_days_ago))
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "late_entry_reason_required"
    assert refused.json()["field"] == "late_reason"
    assert api.head() == head  # nothing recorded
    why = "paper record of Monday, entered after the network outage"
    recorded = api.post("admin1", "/locations", depot(1, occurred_at=three_days_ago, late_reason=why))
    assert recorded.status_code == 201, recorded.text
    seq = recorded.json()["events"][0]["seq"]
    # An hour back is contemporaneous: no reason needed, no flag.
    hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    timely = api.post("admin1", "/locations", depot(2, occurred_at=hour_ago))
    assert timely.status_code == 201, timely.text

    flagged = search(api, late_entry="true")
    assert [e["seq"] for e in flagged["entries"]] == [seq]
    entry = flagged["entries"][0]
    assert entry["late_entry"] is True and entry["late_reason"] == why
    assert entry["occurred_at"][:19] == three_days_ago[:19]
    trail = api.get("insp1", f"/audit/{recorded.json()['id']}").json()["entries"]["items"]
    assert [(e["late_entry"], e["late_reason"]) for e in trail] == [(True, why)]
    assert search(api, late_entry="false", entity_id=timely.json()["id"])["total"] == 1


def test_a_search_by_actor_and_time_returns_exactly_the_steps_made(api: Api, program: Program) -> None:
    before = datetime.now(UTC)
    made: list[int] = []
    kits = [str(program.kit(n)) for n in ("K00001", "K00002", "K00003")]
    for n, kit in enumerate(kits):
        answer = api.post("depot1", "/shipments", {
            "shipment_number": f"SH-AUD-{n}", "sscc": sscc(70 + n), "from_id": str(program.depot),
            "to_id": str(program.site), "kit_ids": [kit], "min_celsius": "2", "max_celsius": "8",
        })
        assert answer.status_code == 201, answer.text
        made += [e["seq"] for e in answer.json()["events"]]
    after = datetime.now(UTC)
    # Other people's steps inside the same time range, and the depot's own steps before it, stay out.
    assert api.post("qa1", f"/lots/{program.api}/hold", {"reason": "noise"}).status_code == 200
    window = {"recorded_from": before.isoformat(), "recorded_to": after.isoformat()}
    found = search(api, principal="depot1", **window)
    assert [e["seq"] for e in found["entries"]] == made
    assert found["total"] == len(made)
    links = chain_links(api)
    assert all(e["chain_hash"] == links[e["seq"]] for e in found["entries"])
    assert {e["principal"] for e in found["entries"]} == {"depot1"}
    everyone_before = search(api, principal="depot1", recorded_to=before.isoformat())
    assert not set(e["seq"] for e in everyone_before["entries"]) & set(made)
    # By event type and place; paged.
    shipped = search(api, event="Shipment.Shipped", **window)
    assert len(shipped["entries"]) == 3
    at_site = search(api, place_id=str(program.site), **window)
    assert {e["seq"] for e in shipped["entries"]} <= {e["seq"] for e in at_site["entries"]}
    page = search(api, principal="depot1", limit=2, offset=2, **window)
    assert [e["seq"] for e in page["entries"]] == made[2:4] and page["total"] == len(made)
    # As CSV: the same rows, with their chain position and hash.
    answer = api.get("insp1", "/audit", params={"principal": "depot1", "format": "csv", **window})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [int(r["seq"]) for r in rows] == made
    assert all(r["chain_hash"] == links[int(r["seq"])] for r in rows)
    # Bad criteria are refused naming the field; a site user may not search.
    naive = api.get("insp1", "/audit", params={"recorded_from": "2026-01-01T00:00:00"})
    assert naive.status_code == 422 and "recorded_from" in naive.text
    assert api.get("insp1", "/audit", params={"meaning": "liked"}).status_code == 422
    assert api.get("site1", "/audit").status_code == 403


def test_every_release_signature_of_a_period(api: Api, program: Program) -> None:
    released = search(api, meaning="released")
    assert released["entries"], "the program released its lots"
    assert {e["meaning"] for e in released["entries"]} == {"released"}
    assert {e["role"] for e in released["entries"]} == {"qa"}
    approved = search(api, meaning="approved")
    assert not {e["seq"] for e in approved["entries"]} & {e["seq"] for e in released["entries"]}


def test_lotline_audit_search_prints_the_same_rows(
    api: Api, program: Program, database_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wanted = search(api, principal="qa1", meaning="released")
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    argv = ["audit", "--database-url", database_url, "search", "--principal", "qa1", "--meaning", "released"]
    assert main([*argv, "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [int(r["seq"]) for r in rows] == [e["seq"] for e in wanted["entries"]]
    assert f"{wanted['total']} events match" in err
    with pytest.raises(SystemExit) as refused:
        main([*argv, "--recorded-from", "yesterday"])
    assert refused.value.code == 2


def test_an_unblinded_read_is_recorded_before_the_answer(api: Api, program: Program) -> None:
    head = api.head()[0]
    assert api.get("site1", f"/trace/lots/{program.api}/forward?unblinded=true").status_code == 403
    assert api.get("depot1", f"/trace/lots/{program.api}/forward?unblinded=true").status_code == 403
    assert api.head()[0] == head  # a refused read records nothing
    assert api.get("recall1", f"/trace/lots/{program.api}/forward").status_code == 200  # blinded: nothing
    assert api.head()[0] == head
    answer = api.get("recall1", f"/trace/lots/{program.api}/forward?unblinded=true")
    assert answer.status_code == 200
    assert api.head()[0] == head + 1
    log = search(api, "qa1", event="UserAccount.UnblindedRead")
    assert len(log["entries"]) == 1
    read = log["entries"][0]
    assert (read["principal"], read["entity_id"]) == ("recall1", str(account_id("recall1")))
    assert read["changes"]["what"] == f"lot {program.api}"
    assert read["changes"]["request"].startswith(f"GET /trace/lots/{program.api}/forward?")
    assert "unblinded=true" in read["changes"]["request"]
