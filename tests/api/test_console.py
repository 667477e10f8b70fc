"""The console's sign-in and its access screen, through the app on both stores: sessions by cookie
(HttpOnly, SameSite=Strict), CSRF on every form, idle timeout and sign-out; the same roles and rules as
the API (a refusal is a 403 page or a message next to the field, and records nothing)."""

from __future__ import annotations

import io
import re
import zipfile
from datetime import timedelta
from typing import Any

from ledger.domain.account import account_id
from tests.api.conftest import PASSWORD, Api, signature
from tests.builders import Program


def sign_in(api: Api, principal: str, password: str = PASSWORD) -> Any:
    form = api.client.get("/console/sign-in")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token is not None
    return api.client.post(
        "/console/sign-in",
        data={"principal": principal, "password": password, "csrf": token.group(1)},
        follow_redirects=False,
    )


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def test_sign_in_gives_a_strict_http_only_session_that_signs_out(api: Api, program: Program) -> None:
    assert api.client.get("/", follow_redirects=False).headers["location"] == "/console"
    assert api.client.get("/console", follow_redirects=False).headers["location"] == "/console/sign-in"
    wrong = sign_in(api, "admin1", "not the password")
    assert wrong.status_code == 401 and "Wrong user name or password" in wrong.text
    signed = sign_in(api, "admin1")
    assert signed.status_code == 303 and signed.headers["location"] == "/console"
    cookie = signed.headers["set-cookie"]
    assert (
        "lotline_session=" in cookie
        and "HttpOnly" in cookie
        and "SameSite=strict" in cookie.replace("Strict", "strict")
    )
    home = api.client.get("/console")
    assert home.status_code == 200 and "Ada Admin" in home.text
    # A form without the session's CSRF token does nothing.
    head = api.head()
    forged = api.client.post(
        "/console/users",
        data={"principal": "x9", "name": "X", "role": "qa", "reason": "forged", "csrf": "wrong"},
    )
    assert forged.status_code == 403 and api.head() == head
    out = api.client.post("/console/sign-out", data={"csrf": csrf_of(home.text)}, follow_redirects=False)
    assert out.status_code == 303
    api.client.cookies.set(
        "lotline_session", cookie.split("lotline_session=")[1].split(";")[0], path="/console"
    )
    assert api.client.get("/console", follow_redirects=False).headers["location"] == "/console/sign-in"


def test_an_admin_adds_and_disables_a_user_with_bad_input_shown_next_to_the_field(
    api: Api, program: Program
) -> None:
    sign_in(api, "admin1")
    page = api.client.get("/console/users")
    assert page.status_code == 200 and 'id="add-user"' in page.text
    csrf = csrf_of(page.text)
    head = api.head()
    form = {
        "principal": "nurse7",
        "name": "Nia Nurse",
        "role": "site",
        "places": str(program.site),
        "password": "short",
        "reason": "new study nurse",
        "csrf": csrf,
    }
    short = api.client.post("/console/users", data=form)
    assert short.status_code == 422 and 'id="error-password"' in short.text and "at least 10" in short.text
    assert api.head() == head  # nothing recorded
    added = api.client.post("/console/users", data={**form, "password": "a long enough password"})
    assert added.status_code == 200 and "Added nurse7." in added.text and 'id="user-nurse7"' in added.text
    again = api.client.post("/console/users", data={**form, "password": "a long enough password"})
    assert again.status_code == 422 and "already exists" in again.text  # pressed twice: recorded once
    disabled = api.client.post("/console/users/nurse7/disable", data={"reason": "left", "csrf": csrf})
    assert disabled.status_code == 200 and "nurse7 disabled." in disabled.text
    events = [
        e["event"] for e in api.get("insp1", f"/audit/{account_id('nurse7')}").json()["entries"]["items"]
    ]
    assert events == ["Registered", "Disabled"]  # each change once, in the chain


def test_a_site_user_reaches_no_access_page_even_by_typing_its_address(api: Api, program: Program) -> None:
    sign_in(api, "site1")
    page = api.client.get("/console/users")
    assert page.status_code == 403 and "may not read users" in page.text
    home = api.client.get("/console")
    head = api.head()
    tried = api.client.post(
        "/console/users",
        data={"principal": "x9", "name": "X", "role": "qa", "reason": "r", "csrf": csrf_of(home.text)},
    )
    assert tried.status_code == 403 and api.head() == head  # the ledger's rule: admins only


def test_a_session_unused_longer_than_the_idle_timeout_ends(api: Api, program: Program) -> None:
    sign_in(api, "qa1")
    assert api.client.get("/console/users").status_code == 200
    api.client.app.state.console_sessions.idle = timedelta(0)
    assert api.client.get("/console", follow_redirects=False).headers["location"] == "/console/sign-in"


def test_an_admin_changes_role_places_password_and_tokens_on_a_users_page(api: Api, program: Program) -> None:
    sign_in(api, "admin1")
    page = api.client.get("/console/users/site2")
    assert page.status_code == 200 and 'id="form-role"' in page.text
    csrf = csrf_of(page.text)
    base = "/console/users/site2"
    last = api.client.post(
        f"{base}/unbind", data={"places": str(program.fr_site), "reason": "r", "csrf": csrf}
    )
    assert "would be bound to no place" in last.text  # the ledger's rule, shown on the page
    bound = api.client.post(
        f"{base}/bind", data={"places": str(program.site), "reason": "cover", "csrf": csrf}
    )
    assert "site2 is bound." in bound.text
    reset = api.client.post(
        f"{base}/password", data={"password": "another long one", "reason": "forgot", "csrf": csrf}
    )
    assert "site2 has a new password." in reset.text
    assert api.identity.verify_password("site2", "another long one").principal == "site2"
    revoked = api.client.post(f"{base}/revoke", data={"reason": "lost tablet", "csrf": csrf})
    assert "no active token left" in revoked.text
    assert api.get("site2", f"/sites/{program.fr_site}/shipments").status_code == 401
    role = api.client.post(f"{base}/role", data={"role": "qa", "reason": "moved to QA", "csrf": csrf})
    assert "site2 has a new role." in role.text and "Role <b>qa</b>" in role.text
    events = [
        e["event"] for e in api.get("insp1", f"/audit/{account_id('site2')}").json()["entries"]["items"]
    ]
    assert events[-4:] == ["Bound", "PasswordSet", "TokensRevoked", "RoleChanged"]


def test_a_site_confirms_a_receipt_once_however_often_the_form_is_sent(api: Api, program: Program) -> None:
    shipment = program.ship(["K00001", "K00002", "K00003"])
    api.settle()
    sign_in(api, "site1")
    listed = api.client.get(f"/console/sites/{program.site}/shipments")
    assert listed.status_code == 200 and 'id="shipment-S-1"' in listed.text
    page = api.client.get(f"/console/sites/{program.site}/shipments/{shipment}")
    key = re.search(r'name="form_key" value="([^"]+)"', page.text)
    assert key is not None
    form = {
        "csrf": csrf_of(page.text),
        "form_key": key.group(1),
        "outcome-K00001": "received",
        "outcome-K00002": "damaged",
        "remark-K00002": "box crushed",
        "outcome-K00003": "missing",
        "remark-K00003": "",
        "logger_min": "9",
        "logger_max": "3",
    }
    head = api.head()
    bad = api.client.post(f"/console/sites/{program.site}/shipments/{shipment}", data=form)
    assert bad.status_code == 422 and 'id="error-logger"' in bad.text and api.head() == head
    form.update(logger_min="3", logger_max="7", **{"remark-K00003": "not in the shipper"})
    first = api.client.post(f"/console/sites/{program.site}/shipments/{shipment}", data=form)
    again = api.client.post(f"/console/sites/{program.site}/shipments/{shipment}", data=form)  # pressed twice
    assert first.status_code == again.status_code == 200 and "The receipt is recorded." in again.text
    receipts = api.get("insp1", "/audit", params={"event": "Shipment.ReceiptConfirmed"}).json()
    assert receipts["total"] == 1  # recorded once
    assert (
        'id="kit-K00002"' in again.text and "box crushed" in again.text and "not in the shipper" in again.text
    )
    assert api.client.get(f"/console/sites/{program.fr_site}/shipments").status_code == 403  # not theirs

    api.settle()
    kits = api.client.get(f"/console/sites/{program.site}/kits")
    assert kits.status_code == 200 and "3 kits." in kits.text
    rows = dict(re.findall(r'<tr id="kit-(K\d+)">(.*?)</tr>', kits.text, re.S))
    assert list(rows) == ["K00001", "K00002", "K00003"]
    assert ">damaged<" in rows["K00002"] and ">missing<" in rows["K00003"] and "received" in rows["K00001"]
    damaged = api.client.get(f"/console/sites/{program.site}/kits", params={"status": "damaged"})
    assert re.findall(r'<tr id="kit-(K\d+)">', damaged.text) == ["K00002"]
    history = api.client.get(f"/console/sites/{program.site}/kits/{program.kit('K00002')}")
    assert history.status_code == 200 and "Kit K00002" in history.text
    actions = [a.strip() for a in re.findall(r"</td><td>([a-z ]+)</td>", history.text)]
    assert actions[-2:] == ["shipped", "received"]
    assert api.client.get(f"/console/sites/{program.fr_site}/kits").status_code == 403  # typed, not theirs
    other = api.client.get(f"/console/sites/{program.fr_site}/kits/{program.kit('K00002')}")
    assert other.status_code == 403


def test_an_investigator_finds_a_kit_by_its_number_and_traces_its_lot_forward(
    api: Api, program: Program
) -> None:
    program.at_site(["K00001", "K00002"])
    api.settle()
    sign_in(api, "recall1")
    found = api.client.get("/console/find", params={"q": "K00001"}, follow_redirects=False)
    assert found.status_code == 303
    assert found.headers["location"] == f"/console/trace/kits/{program.kit('K00001')}"
    back = api.client.get(found.headers["location"])
    assert back.status_code == 200 and "Kit K00001 back to its lots" in back.text
    lots = re.findall(r'id="lot-([^"]+)"', back.text)
    assert {"API-1", "DP-1"} <= set(lots) and len(lots) == len(set(lots))
    forward = api.client.get(f"/console/trace/lots/{program.api}")
    assert forward.status_code == 200 and "Where lot API-1 went" in forward.text
    picture = forward.text[forward.text.index("<svg"):forward.text.index("</svg>")]
    nodes = ("lot-" + str(program.api), "batch-", "run-", f"place-{program.site}", f"place-{program.depot}")
    for node in nodes:
        assert f'id="{node}' in picture, node
    assert ">2<" in picture and ">8<" in picture  # kits of the run at Site 101, and still at the depot
    assert ">B-1<" in picture and ">DP-1<" in picture and ">P-1<" in picture
    nothing = api.client.get("/console/find", params={"q": "NO-SUCH-NUMBER"})
    assert nothing.status_code == 200 and "Nothing carries the number NO-SUCH-NUMBER" in nothing.text
    several = api.client.get("/console/find", params={"q": "B-1"})
    assert several.status_code == 200 and "batch of" in several.text

    api.client.post("/console/sign-out", data={"csrf": csrf_of(forward.text)})
    sign_in(api, "site1")
    refused = api.client.get(f"/console/trace/lots/{program.api}")
    assert refused.status_code == 403 and "may not read traces" in refused.text
    assert api.client.get("/console/find", params={"q": "K00001"}).status_code == 403


def test_the_recall_dashboard_lists_recalls_and_serves_each_ones_live_status(
    api: Api, program: Program
) -> None:
    program.at_site(["K00001", "K00002"])
    opened = api.post("qa1", "/recalls", {
        "recall_number": "RC-9", "lot_ids": [str(program.api)], "reason": "impurity",
        "classification": "class_ii", "scope": "all_kits", "signature": signature("approved"),
    })
    assert opened.status_code == 201, opened.text
    recall_id = opened.json()["id"]
    api.settle()
    sign_in(api, "recall1")
    listed = api.client.get("/console/recalls")
    assert listed.status_code == 200 and 'id="recall-RC-9"' in listed.text
    board = api.client.get(f"/console/recalls/{recall_id}")
    assert board.status_code == 200 and f'id="place-{program.site}"' in board.text
    assert "status.json" in board.text
    live = api.client.get(f"/console/recalls/{recall_id}/status.json").json()
    site = {p["place_id"]: p for p in live["places"]}[str(program.site)]
    assert (site["kits"], site["reported"]) == (2, 0)

    kit = program.kit("K00001")
    reported = api.post("site1", f"/recalls/{recall_id}/sites/{program.site}/kits/{kit}/report",
                        {"outcome": "quarantined"})
    assert reported.status_code == 200, reported.text
    live = api.client.get(f"/console/recalls/{recall_id}/status.json").json()
    assert {p["place_id"]: p for p in live["places"]}[str(program.site)]["reported"] == 1  # no reload needed
    report = api.client.get(f"/console/recalls/{recall_id}/report")
    assert report.status_code == 200 and "RC-9" in report.text

    api.client.post("/console/sign-out", data={"csrf": csrf_of(board.text)})
    sign_in(api, "site1")
    assert api.client.get(f"/console/recalls/{recall_id}").status_code == 403
    assert api.client.get(f"/console/recalls/{recall_id}/status.json").status_code == 403


def test_the_verify_screen_hands_out_proof_bundles_to_verifiers_only(api: Api, program: Program) -> None:
    sign_in(api, "insp1")
    page = api.client.get("/console/verify")
    assert page.status_code == 200 and "No checkpoint is signed yet" in page.text
    early = api.client.get("/console/verify/bundle", params={"seq": 1})
    assert early.status_code == 409 and early.json()["code"] == "not_yet_checkpointed"
    log = api.client.app.state.transparency  # type: ignore[attr-defined]
    log.keys.generate()
    checkpoint = log.checkpoint()
    bundle = api.client.get("/console/verify/bundle", params={"seq": 1}).json()
    assert (bundle["format"], bundle["seq"], bundle["size"]) == ("lotline-proof-bundle/1", 1, checkpoint.size)
    assert api.client.get("/console/verify/bundle", params={"seq": 10**9}).status_code == 422
    assert f"{checkpoint.size}" in api.client.get("/console/verify").text
    unblinded = api.get("insp1", "/audit", params={"event": "UserAccount.UnblindedRead"}).json()["total"]
    export = api.client.get("/console/verify/export")
    assert export.status_code == 200 and export.content[:2] == b"PK"  # a ZIP for lotline-verify
    with zipfile.ZipFile(io.BytesIO(export.content)) as z:
        assert any(n.endswith("events.jsonl") for n in z.namelist())
    after = api.get("insp1", "/audit", params={"event": "UserAccount.UnblindedRead"}).json()["total"]
    assert after == unblinded + 1  # the kit list it holds was read: recorded first
    api.client.post("/console/sign-out", data={"csrf": csrf_of(page.text)})
    sign_in(api, "site1")
    assert api.client.get("/console/verify").status_code == 403
    assert api.client.get("/console/verify/bundle", params={"seq": 1}).status_code == 403
    assert api.client.get("/console/verify/export").status_code == 403


def test_the_verify_screen_runs_the_servers_verification_and_serves_consistency_proofs(
    api: Api, program: Program
) -> None:
    api.client.app.state.transparency.keys.generate()  # type: ignore[attr-defined]
    first = api.post("qa1", "/inspector/checkpoints").json()
    program.ship(["K00001"])
    newest = api.post("qa1", "/inspector/checkpoints").json()
    sign_in(api, "insp1")
    page = api.client.get("/console/verify")
    for listed in (first, newest):
        assert f'id="checkpoint-{listed["size"]}"' in page.text
    assert newest["root"] in page.text and 'id="verdict"' not in page.text  # run on demand only
    ran = api.client.get("/console/verify", params={"run": "true"})
    assert 'id="verdict">Passed<' in ran.text and f"{newest['size']} events" in ran.text
    proof = api.client.get("/console/verify/consistency", params={"old": first["size"]}).json()
    assert proof["old_size"] == first["size"] and proof["new_size"] == newest["size"]
    assert proof["checkpoint"] == newest["note"] and proof["path"]
    too_big = api.client.get("/console/verify/consistency", params={"old": newest["size"] + 1})
    assert too_big.status_code == 422
    sign_in(api, "site1")
    assert api.client.get("/console/verify/consistency", params={"old": 1}).status_code == 403
