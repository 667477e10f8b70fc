"""Queries and inspector routes over HTTP: answers reflect the writes made before them, name their
freshness, page long lists; commands name their events' chain positions and hashes; the export
downloads as a ZIP that the offline verifier accepts."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from ledger.verify import verify_chain
from lotline_verify.__main__ import main as lotline_verify
from tests.api.conftest import Api, signature
from tests.builders import KIT_GTIN, Program, sscc


def test_command_answers_name_each_new_event_with_its_chain_seq_and_hash(api: Api, program: Program) -> None:
    size, _ = api.head()
    answer = api.post("qa1", f"/lots/{program.api}/hold", {"reason": "investigation"})
    assert answer.status_code == 200
    [event] = answer.json()["events"]
    assert event["seq"] == size + 1 and event["stream"] == str(program.api)
    assert event["chain_hash"] == api.head()[1].hex()
    shipped = api.post(
        "depot1",
        "/shipments",
        {
            "shipment_number": "S-7",
            "sscc": sscc(7),
            "from_id": str(program.depot),
            "to_id": str(program.site),
            "kit_ids": [str(k) for k in program.kits("K00001", "K00002")],
            "min_celsius": "2",
            "max_celsius": "8",
        },
    )
    assert shipped.status_code == 201, shipped.text
    events = shipped.json()["events"]
    shipment = shipped.json()["id"]
    assert [(e["stream"], e["version"]) for e in events] == [
        (shipment, 1),
        (str(program.kit("K00001")), 2),
        (str(program.kit("K00002")), 2),
    ]
    assert [e["seq"] for e in events] == [size + 2, size + 3, size + 4]
    assert events[-1]["chain_hash"] == api.head()[1].hex()
    report = verify_chain(api.ledger.chain)
    assert report.ok


def test_a_query_sees_the_write_made_just_before_it_and_names_its_freshness(
    api: Api, program: Program
) -> None:
    recalled = api.post(
        "qa1",
        f"/lots/{program.api}/recall",
        {"signature": signature("approved"), "reason": "nitrosamine impurity"},
    )
    assert recalled.status_code == 200
    notices = api.get("recall1", "/recalls").json()
    assert [n["lot"]["lot_number"] for n in notices["notices"]] == ["API-1"]
    assert notices["freshness"]["lag"] == 0 and notices["freshness"]["as_of"] == notices["freshness"]["head"]
    impact = api.get("recall1", f"/recalls/impact?lot_id={program.api}").json()
    assert impact["total_kits"] == 10 and impact["blinded"] is True
    unblinded = api.get("recall1", f"/recalls/impact?lot_id={program.api}&unblinded=true").json()
    assert unblinded["total_kits"] == 6  # only the active arm's kits came from the recalled API lot


def test_long_answers_are_paged(api: Api, program: Program) -> None:
    pages = [
        api.get("recall1", f"/recalls/impact/kits?lot_id={program.api}&limit=4&offset={o}").json()
        for o in (0, 4, 8)
    ]
    assert [p["total"] for p in pages] == [10, 10, 10]
    numbers = [k["kit_number"] for p in pages for k in p["items"]]
    assert numbers == [f"K{i:05d}" for i in range(1, 11)]
    forward = api.get("qa1", f"/trace/lots/{program.api}/forward/kits?limit=3&offset=9").json()
    assert [k["kit_number"] for k in forward["items"]] == ["K00010"]
    assert api.get("qa1", f"/trace/lots/{program.api}/forward/kits?limit=0").status_code == 422
    trail = api.get("insp1", f"/audit/{program.api}?limit=1").json()
    assert trail["entries"]["total"] >= 3 and len(trail["entries"]["items"]) == 1
    entry = trail["entries"]["items"][0]
    [link] = api.ledger.chain.links_for([(program.api, 1)])
    assert (
        entry["event"] == "Received"
        and entry["seq"] == link.seq
        and entry["chain_hash"] == link.chain_hash.hex()
    )


def test_inventory_custody_and_ids(api: Api, program: Program) -> None:
    program.at_site(["K00001", "K00002"])
    stock = api.get("mfg1", "/inventory/lots?kind=api").json()
    assert [s["lot"]["lot_number"] for s in stock["lots"]] == ["API-1"] and (
        stock["lots"][0]["remaining"],
        stock["lots"][0]["unit"],
    ) == ("1.5", "kg")
    kits = api.get("depot1", "/inventory/kits").json()
    assert kits["total"] == 10
    kit = api.get("site1", "/ids/kit", params={"gtin": KIT_GTIN, "number": "K00001"}).json()["id"]
    assert kit == str(program.kit("K00001"))
    custody = api.get("site1", f"/custody/kits/{kit}").json()
    assert [s["action"] for s in custody["steps"]] == ["commissioned", "shipped", "received"]
    assert api.get("site1", "/ids/kit").status_code == 422


def test_ready_reports_the_store_and_how_far_behind_the_read_models_are(api: Api, program: Program) -> None:
    answer = api.get("depot1", "/ready")
    assert answer.status_code == 200
    body = answer.json()
    assert body["ready"] is True and body["store_reachable"] is True and body["chain_size"] == api.head()[0]
    assert body["read_models"]["reachable"] and body["read_models"]["lag"] >= 0
    assert set(body["read_models"]["positions"]) == {"genealogy", "recall", "inventory", "custody", "audit"}
    # The EPCIS index is kept by the worker too: a query for the head waits for it, then /ready shows it.
    assert api.get("depot1", "/epcis/events", params={"perPage": 1}).status_code == 200
    assert api.get("depot1", "/ready").json()["read_models"]["epcis_index"] == api.head()[0]


def test_inspector_verifies_reads_the_head_and_downloads_an_export_the_offline_verifier_accepts(
    api: Api, program: Program, tmp_path: Path
) -> None:
    program.at_site(["K00001"])
    report = api.get("insp1", "/inspector/verification").json()
    size, head = api.head()
    assert report["ok"] is True and report["events"] == size and report["head_hash"] == head.hex()
    assert api.get("insp1", "/inspector/head").json() == {
        "size": size,
        "head_hash": head.hex(),
        "checkpoint": None,
    }
    lines = api.get("insp1", "/inspector/export/events?to=5").content.splitlines()
    assert len(lines) == 5 and lines[0].startswith(b'{"seq":1,"stream":"')
    assert api.get("qa1", "/inspector/export").status_code == 403
    download = api.get("insp1", "/inspector/export")
    assert download.status_code == 200 and download.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
        assert sorted(archive.namelist()) == [
            "checkpoints.jsonl",
            "cosignatures.jsonl",
            "events.jsonl",
            "keys.jsonl",
            "manifest.json",
        ]
        archive.extractall(tmp_path / "export")
    assert lotline_verify([str(tmp_path / "export"), "--quiet"]) == 0
    # altering one byte of one event is caught
    events = tmp_path / "export" / "events.jsonl"
    events.write_bytes(events.read_bytes().replace(b'"Site 101"', b'"Site 666"', 1))
    assert lotline_verify([str(tmp_path / "export"), "--quiet"]) == 1
