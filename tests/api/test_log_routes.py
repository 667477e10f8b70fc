"""The verifiable log over HTTP: checkpoints, proofs, bundles, the witness interface and its HTTP feed,
checkpoints made at QA release and in the background, and who may do what."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ledger.application import Ledger
from ledger.config import Settings
from ledger.identity import Identity
from ledger.values import Role
from ledger.writer import UnsignedHead
from lotline_verify.bundle import verify_bundle
from lotline_verify.notes import parse_note, parse_vkey, verify_signed
from lotline_verify.tree import verify_consistency, verify_inclusion
from scripts.witness import HttpFeed, Refused, Witness
from tests.api.bodies import commands
from tests.api.conftest import FAST_SCRYPT, WORKER_THREAD, Api, populate, signature
from tests.builders import Program
from tests.merkle_builders import Attacker

ORIGIN = "lotline.test/api"


def start(database_url: str, tmp_path: Path, **settings: Any) -> Iterator[Api]:
    options = {"checkpoint_in_background": False, **WORKER_THREAD, **settings}
    app_settings = Settings(
        database_url=database_url, keys_dir=tmp_path / "keys", log_name=ORIGIN, **options
    )
    ledger = Ledger.open(database_url, keys_dir=app_settings.keys_dir)  # the app's writer key
    identity = Identity.open(database_url, ledger=ledger, scrypt_n=FAST_SCRYPT)
    try:
        with TestClient(create_app(app_settings)) as client:
            yield Api(client, ledger, identity)
    finally:
        identity.close()
        ledger.close()


@pytest.fixture
def log_api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    """The app (no background checkpointer) with the released program and its users; no log key yet."""
    for api in start(database_url, tmp_path):
        api.program = populate(api)  # type: ignore[attr-defined]
        yield api


def generate_key(api: Api) -> str:
    return str(api.client.app.state.transparency.keys.generate().vkey)  # type: ignore[attr-defined]


def test_without_a_signing_key_checkpoints_are_a_clear_503_and_reads_a_404(log_api: Api) -> None:
    answer = log_api.post("qa1", "/inspector/checkpoints")
    assert answer.status_code == 503
    assert answer.json()["code"] == "signing_key_error"
    assert "lotline keys generate" in answer.json()["message"]
    missing = log_api.get("insp1", "/inspector/checkpoints/latest")
    assert missing.status_code == 404 and missing.json()["message"] == "no checkpoint has been signed yet"
    unsigned = log_api.get("insp1", "/inspector/proofs/1")
    assert unsigned.status_code == 409 and "retry-after" not in unsigned.headers
    assert "until the log has a signing key" in unsigned.json()["message"]
    assert log_api.get("insp1", "/inspector/checkpoints").json() == {"checkpoints": []}


def test_checkpoints_are_signed_on_demand_listed_and_shown_as_json_and_text(log_api: Api) -> None:
    vkey = generate_key(log_api)
    size = log_api.head()[0]
    made = log_api.post("qa1", "/inspector/checkpoints")
    assert made.status_code == 200 and made.json()["size"] == size and made.json()["origin"] == ORIGIN
    assert log_api.post("admin1", "/inspector/checkpoints").json()["size"] == size  # head already signed
    log_api.program.at_site(["K00001"])  # type: ignore[attr-defined]
    newer = log_api.post("admin1", "/inspector/checkpoints").json()
    assert newer["size"] == log_api.head()[0] > size
    listed = log_api.get("qa1", "/inspector/checkpoints").json()["checkpoints"]
    assert [c["size"] for c in listed] == [newer["size"], size]
    assert [c["size"] for c in log_api.get("qa1", f"/inspector/checkpoints?before={newer['size']}").json()[
        "checkpoints"]] == [size]
    shown = log_api.get("admin1", f"/inspector/checkpoints/{size}").json()
    assert shown["note"].startswith(f"{ORIGIN}\n{size}\n{shown['root']}\n\n\u2014 {ORIGIN} ")
    text = log_api.get("insp1", f"/inspector/checkpoints/{size}/note")
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
    assert text.text == shown["note"]
    assert log_api.get("insp1", "/inspector/checkpoints/latest/note").text == newer["note"]
    assert log_api.get("insp1", "/inspector/checkpoints/latest").json() == newer
    assert log_api.get("insp1", "/inspector/checkpoints/3").status_code == 404
    assert parse_vkey(vkey).name == ORIGIN


def test_the_verifier_key_is_served_as_text_without_a_token(log_api: Api) -> None:
    missing = log_api.client.get("/inspector/log/vkey")
    assert missing.status_code == 404 and missing.json()["message"] == f"log key {ORIGIN} does not exist"
    first = generate_key(log_api)
    answer = log_api.client.get("/inspector/log/vkey")                       # no Authorization header
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    assert answer.text == first + "\n"
    note = log_api.post("qa1", "/inspector/checkpoints").json()["note"]
    assert verify_signed(parse_note(note), [parse_vkey(answer.text)]).name == ORIGIN
    # after a rotation: the new key; all=true gives every key that signed, oldest first
    _, new = log_api.client.app.state.transparency.keys.rotate()  # type: ignore[attr-defined]
    assert log_api.client.get("/inspector/log/vkey").text == new.vkey + "\n"
    every = log_api.client.get("/inspector/log/vkey", params={"all": "true"}).text
    assert every.splitlines() == [first, new.vkey]
    assert verify_signed(parse_note(note), [parse_vkey(k) for k in every.splitlines()]).vkey() == first


def test_inclusion_consistency_and_bundle_proofs_verify_independently(log_api: Api) -> None:
    vkey = generate_key(log_api)
    old = log_api.post("qa1", "/inspector/checkpoints").json()
    log_api.program.at_site(["K00002"])  # type: ignore[attr-defined]
    new = log_api.post("qa1", "/inspector/checkpoints").json()
    b64 = base64.b64decode
    for seq in (1, 7, new["size"]):
        p = log_api.get("insp1", "/inspector/proofs/inclusion", params={"seq": seq}).json()
        assert (p["index"], p["size"], p["root"]) == (seq - 1, new["size"], new["root"])
        assert verify_inclusion(p["index"], p["size"], b64(p["leaf_hash"]), [b64(h) for h in p["path"]],
                                b64(p["root"]))
    at_old = log_api.get("insp1", "/inspector/proofs/inclusion", params={"seq": 2, "size": old["size"]})
    at_old = at_old.json()
    assert at_old["root"] == old["root"]
    c = log_api.get("insp1", "/inspector/proofs/consistency", params={"old": old["size"]}).json()
    assert (c["old_root"], c["new_root"]) == (old["root"], new["root"])
    assert verify_consistency(old["size"], new["size"], b64(old["root"]), b64(new["root"]),
                              [b64(h) for h in c["path"]])
    bundle = log_api.get("insp1", f"/inspector/proofs/{new['size']}").json()
    assert verify_bundle(bundle, [parse_vkey(vkey)])
    bundle_old = log_api.get("qa1", "/inspector/proofs/3", params={"size": old["size"]}).json()
    assert bundle_old["size"] == old["size"] and verify_bundle(bundle_old, [parse_vkey(vkey)])
    # sizes must be signed checkpoints; events must be in them
    unsigned = log_api.get("insp1", "/inspector/proofs/inclusion", params={"seq": 1, "size": 5})
    assert unsigned.status_code == 404
    too_far = log_api.get("insp1", "/inspector/proofs/inclusion", params={"seq": new["size"] + 1})
    assert too_far.status_code == 422
    bad_old = log_api.get("insp1", "/inspector/proofs/consistency", params={"old": new["size"] + 5})
    assert bad_old.status_code == 422
    assert log_api.get("insp1", "/inspector/proofs/consistency", params={"old": 4}).status_code == 404


def test_a_proof_of_an_event_no_checkpoint_covers_yet_is_a_409_saying_when(log_api: Api) -> None:
    generate_key(log_api)
    signed = log_api.post("qa1", "/inspector/checkpoints").json()["size"]
    log_api.program.at_site(["K00005"])  # type: ignore[attr-defined]
    head = log_api.head()[0]
    for path, params in (("/inspector/proofs/inclusion", {"seq": head}), (f"/inspector/proofs/{head}", {})):
        answer = log_api.get("insp1", path, params=params)
        assert answer.status_code == 409, answer.text
        body = answer.json()
        assert body["code"] == "not_yet_checkpointed"
        assert (body["seq"], body["checkpoint_size"], body["log_size"]) == (head, signed, head)
        assert body["message"].startswith(f"event {head} is in the log but not yet under a signed checkpoint")
        assert "POST /inspector/checkpoints" in body["message"] and body["next_checkpoint_by"]
        assert 290 < int(answer.headers["retry-after"]) <= 305     # 300 s after the last one, plus a poll
    # QA signs one now; the proofs follow
    log_api.post("qa1", "/inspector/checkpoints")
    assert log_api.get("insp1", "/inspector/proofs/inclusion", params={"seq": head}).json()["size"] == head
    assert log_api.get("insp1", f"/inspector/proofs/{head}").json()["size"] == head


def test_who_may_read_sign_and_cosign(log_api: Api) -> None:
    generate_key(log_api)
    for principal in ("site1", "depot1", "mfg1", "qp1", "recall1"):
        assert log_api.get(principal, "/inspector/checkpoints").status_code == 403
        assert log_api.get(principal, "/inspector/witness/add-checkpoint").status_code == 403
    for principal in ("insp1", "site1", "depot1"):
        assert log_api.post(principal, "/inspector/checkpoints").status_code == 403
    log_api.post("qa1", "/inspector/checkpoints")
    for principal in ("insp1", "qa1", "admin1"):
        assert log_api.get(principal, "/inspector/checkpoints/latest").status_code == 200
    assert log_api.get("admin1", "/inspector/witness/add-checkpoint").status_code == 403
    body = {"note": "x", "witness_key": "w+00000000+AA=="}
    assert log_api.post("admin1", "/inspector/witness/cosignatures", body).status_code == 403


def test_a_qa_release_of_a_packaged_batch_is_followed_by_a_checkpoint(
    database_url: str, tmp_path: Path
) -> None:
    for api in start(database_url, tmp_path):
        program = Program(api.ledger)
        program.reference().materials().formulate().placebo().package(active_kits=2, placebo_kits=0)
        api.add_user("qa1", Role.QA, "Quinn QA")
        generate_key(api)
        released = api.post(
            "qa1", f"/packaging-runs/{program.run}/disposition",
            {"released": True, "reason": "batch record reviewed", "signature": signature("released")},
        )
        assert released.status_code == 200, released.json()
        latest = api.get("qa1", "/inspector/checkpoints/latest").json()
        assert latest["size"] == released.json()["events"][-1]["seq"] == api.head()[0]


def test_the_background_checkpointer_signs_the_first_events(database_url: str, tmp_path: Path) -> None:
    for api in start(database_url, tmp_path, checkpoint_in_background=True, checkpoint_poll_seconds=0.1):
        populate(api)
        generate_key(api)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            answer = api.get("insp1", "/inspector/checkpoints/latest")
            if answer.status_code == 200:
                break
            time.sleep(0.1)
        assert answer.status_code == 200 and answer.json()["size"] > 0


def test_a_cosignature_that_does_not_verify_is_refused(log_api: Api, tmp_path: Path) -> None:
    vkey = generate_key(log_api)
    log_api.post("qa1", "/inspector/checkpoints")
    witness = Witness.init(tmp_path / "w.json", "inspector.test/w1", ORIGIN, [vkey])
    accepted = witness.add_checkpoint(log_api.get("insp1", "/inspector/witness/add-checkpoint").text)
    other = Witness.init(tmp_path / "other.json", "inspector.test/w2", ORIGIN, [vkey])
    # the cosignature line of w1 presented as w2's: no cosignature by w2's key in the note
    refused = log_api.post("insp1", "/inspector/witness/cosignatures",
                           {"note": accepted.cosigned_note, "witness_key": other.key.vkey()})
    assert refused.status_code == 409 and refused.json()["code"] == "cosignature_refused"
    # a tampered signature byte
    line = accepted.line
    raw = bytearray(base64.b64decode(line.split()[-1]))
    raw[-1] ^= 1
    forged = accepted.cosigned_note.replace(line.split()[-1], base64.b64encode(bytes(raw)).decode())
    refused = log_api.post("insp1", "/inspector/witness/cosignatures",
                           {"note": forged, "witness_key": witness.key.vkey()})
    assert refused.status_code == 409
    # a malformed key
    bad_key = log_api.post("insp1", "/inspector/witness/cosignatures",
                           {"note": accepted.cosigned_note, "witness_key": "nonsense"})
    assert bad_key.status_code == 422
    assert log_api.get("insp1", "/inspector/checkpoints/latest").json()["cosignatures"] == []


def test_the_http_witness_cosigns_then_refuses_a_forked_history(
    log_api: Api, database_url: str, tmp_path: Path
) -> None:
    vkey = generate_key(log_api)
    program: Program = log_api.program  # type: ignore[attr-defined]
    log_api.post("qa1", "/inspector/checkpoints")
    witness = Witness.init(tmp_path / "witness.json", "inspector.test/w1", ORIGIN, [vkey])
    feed = HttpFeed("http://testserver", log_api.tokens["insp1"], client=log_api.client)

    def run_witness() -> str:
        accepted = witness.add_checkpoint(feed.request(witness.size_and_root()[0]))
        return feed.submit(accepted.cosigned_note, witness.key)

    first = run_witness()
    size = witness.size_and_root()[0]
    assert first == f"stored by http://testserver with checkpoint {size}"
    program.at_site(["K00003"])
    log_api.post("qa1", "/inspector/checkpoints")
    run_witness()
    seen = witness.size_and_root()[0]
    assert seen > size
    latest = log_api.get("insp1", "/inspector/checkpoints/latest").json()
    assert [c["witness"] for c in latest["cosignatures"]] == ["inspector.test/w1"]
    assert latest["note"].count("\u2014 ") == 2
    # Someone with database access rewrites event 8, re-hashes the chain, drops the tree and checkpoints,
    # and has the ledger re-sign with its own key: internally consistent, but not what the witness saw.
    attacker = Attacker(database_url, log_api.ledger.chain.events_table_name)
    try:
        attacker.alter_event(8)
        attacker.rehash_chain(8)
        attacker.forget_tree()
    finally:
        attacker.close()
    with pytest.raises(UnsignedHead, match="rewritten"):  # the writer will not sign over a rewritten chain
        program.at_site(["K00004"], shipment_number="S-2", serial=2)
    refused = log_api.post("admin1", "/locations", commands(program)["register_location"][1])
    assert refused.status_code == 503 and refused.json()["code"] == "unsigned_head", refused.text
    assert log_api.post("qa1", "/inspector/checkpoints").status_code == 200
    # The log key re-signed it, but the writer's signatures name the rewrite ...
    verification = log_api.get("insp1", "/inspector/verification").json()
    assert verification["ok"] is False and "were rewritten" in str(verification)
    # ... and the witness, which never saw this history, refuses it.
    with pytest.raises(Refused, match="NOT consistent"):
        run_witness()
    assert witness.size_and_root()[0] == seen  # the witness keeps what it saw
    assert log_api.get("insp1", "/inspector/checkpoints/latest").json()["cosignatures"] == []


def test_a_cosignature_for_a_size_never_signed_is_refused(log_api: Api, tmp_path: Path) -> None:
    vkey = generate_key(log_api)
    note = log_api.post("qa1", "/inspector/checkpoints").json()["note"]
    witness = Witness.init(tmp_path / "w.json", "inspector.test/w1", ORIGIN, [vkey])
    lines = note.split("\n")
    for size, status in (("99999999999999999999999", 409), ("4", 404)):
        forged = "\n".join([lines[0], size, *lines[2:]])
        answer = log_api.post("insp1", "/inspector/witness/cosignatures",
                              {"note": forged, "witness_key": witness.key.vkey()})
        assert answer.status_code == status, answer.text
