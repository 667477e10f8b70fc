"""Who may do what: 401 without a valid token, 403 for the wrong role, another site or an unblinded
read the role may not make, and never an event written by a refused request."""

from __future__ import annotations

import time
from datetime import timedelta

from ledger.commands import SponsorRelease
from ledger.domain import Shipment
from ledger.values import Meaning, sign
from tests.api.bodies import PRINCIPAL, commands
from tests.api.conftest import Api, signature
from tests.builders import BY_ADMIN, Program, actors


def test_every_route_but_health_and_docs_needs_a_token(api: Api, program: Program) -> None:
    open_paths = {"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
    open_paths.add("/inspector/log/vkey")  # the log's public key: anyone may check checkpoints
    schema = api.client.get("/openapi.json").json()
    for path, operations in schema["paths"].items():
        if path in open_paths:
            continue
        concrete = path.format(
            **{
                name: program.site
                for name in (
                    "site_id",
                    "location_id",
                    "lot_id",
                    "kit_id",
                    "run_id",
                    "batch_id",
                    "shipment_id",
                    "aggregate_id",
                    "recall_id",
                )
            },
            kind="trial",
            event_id="ni:///sha-256;00",
            capture_id="0" * 32,
            value="shipping",
            path="events",
            name="a-query",
            principal="qa1",
            size=1,
            seq=1,
        )
        for method in operations:
            answer = api.client.request(method, concrete)
            assert answer.status_code == 401, (method, path, answer.text)
            assert answer.json()["code"] == "invalid_credentials"
            assert answer.headers["www-authenticate"].startswith("Bearer")
    assert api.client.get("/health").status_code == 200


def test_unknown_revoked_expired_and_disabled_tokens_are_refused(api: Api, program: Program) -> None:
    body = commands(program)["hold_lot"]
    expired = api.identity.issue_token("qa1", ttl=timedelta(milliseconds=1), **BY_ADMIN)
    api.identity.set_disabled("qa2", **BY_ADMIN)
    api.identity.revoke_tokens("qa1", **BY_ADMIN)
    head = api.head()  # the access changes were recorded; the refused requests below record nothing
    assert (
        api.client.post(body[0], json=body[1], headers={"Authorization": "Bearer lt_nonsense"}).status_code
        == 401
    )
    time.sleep(0.01)
    answer = api.client.post(body[0], json=body[1], headers={"Authorization": f"Bearer {expired}"})
    assert answer.status_code == 401 and "expired" in answer.json()["message"]  # not revoked: expired
    answer = api.post("qa2", body[0], body[1])
    assert answer.status_code == 401 and "disabled" in answer.json()["message"]
    answer = api.post("qa1", body[0], body[1])
    assert answer.status_code == 401 and "revoked" in answer.json()["message"]
    assert api.head() == head


def test_each_command_refuses_every_role_the_ledger_does_not_allow_and_writes_nothing(
    api: Api, program: Program
) -> None:
    head = api.head()
    refused = 0
    for name, (path, body, allowed) in commands(program).items():
        for role, principal in PRINCIPAL.items():
            if role in allowed:
                continue
            answer = api.post(principal, path, body)
            assert answer.status_code == 403, (name, role, answer.text)
            # a place-bound role that may take the step elsewhere is refused for the place (a depot
            # confirms receipts at depots, not at the site the route names)
            refusals = ("not_authorised", "forbidden", "not_bound_here")
            assert answer.json()["code"] in refusals, (name, role, answer.json())
            refused += 1
    assert refused > 100
    assert api.head() == head, "a refused request extended the chain"


def test_read_only_roles_are_refused_every_command(api: Api, program: Program) -> None:
    for principal in ("recall1", "insp1"):
        for name, (path, body, _) in commands(program).items():
            answer = api.post(principal, path, body)
            assert answer.status_code == 403, (principal, name)
            assert "allowed" in answer.json()


def test_a_site_user_acts_only_at_their_own_sites(api: Api, program: Program) -> None:
    shipment = program.ship(["K00001", "K00002"])  # to the DE site, where site1 works
    head = api.head()
    receipt = {"outcomes": {"K00001": "received", "K00002": "received"}}
    answer = api.post("site2", f"/sites/{program.site}/shipments/{shipment}/receipt", receipt)
    assert answer.status_code == 403
    assert answer.json() == {
        "code": "forbidden",
        "message": f"site2 is not bound to site {program.site}",
        "site_id": str(program.site),
        "reason": "not_your_site",
    }
    # site2 at its own (FR) site, naming a shipment addressed to the DE site: the ledger refuses it
    answer = api.post("site2", f"/sites/{program.fr_site}/shipments/{shipment}/receipt", receipt)
    assert answer.status_code == 409 and answer.json()["code"] == "wrong_site"
    # site2 cannot see the shipment either, through its own site or the other one
    assert api.get("site2", f"/sites/{program.site}/shipments/{shipment}").status_code == 403
    assert api.get("site2", f"/sites/{program.fr_site}/shipments/{shipment}").status_code == 404
    kit = program.kit("K00001")
    assert (
        api.post("site2", f"/sites/{program.site}/kits/{kit}/dispensing", {"subject": "S-1"}).status_code
        == 403
    )
    assert api.head() == head
    # site1 may
    seen = api.get("site1", f"/sites/{program.site}/shipments/{shipment}").json()
    assert seen["kit_numbers"] == ["K00001", "K00002"] and seen["status"] == "in_transit"
    assert (
        api.post("site1", f"/sites/{program.site}/shipments/{shipment}/receipt", receipt).status_code == 200
    )


def test_site_users_never_read_genealogy_recalls_or_audit_and_see_only_their_kits(
    api: Api, program: Program
) -> None:
    program.at_site(["K00001"])
    api.ledger.handle(
        SponsorRelease(
            run_id=program.run,
            country="FR",
            signature=sign(actors.qa, Meaning.SPONSOR_RELEASED),
        ),
        actors.qa,
    )
    program.at_site(["K00002"], shipment_number="S-2", to=program.fr_site, serial=2)
    kit = program.kit("K00001")
    for path in (
        f"/trace/kits/{kit}/backward",
        f"/trace/lots/{program.api}/forward",
        f"/trace/lots/{program.api}/forward/kits",
        f"/recalls/impact?lot_id={program.api}",
        f"/recalls/impact/kits?lot_id={program.api}",
        "/recalls",
        f"/audit/{kit}",
        "/inventory/lots",
        "/inspector/head",
        "/inspector/verification",
        "/inspector/export",
    ):
        answer = api.get("site1", path)
        assert answer.status_code == 403, path
        assert answer.json()["code"] == "forbidden"
    places = api.get("site1", "/inventory/kits").json()["places"]
    assert [p["place"]["id"] for p in places] == [str(program.site)]
    assert api.get("site1", f"/custody/kits/{kit}").status_code == 200
    assert api.get("site2", f"/custody/kits/{kit}").status_code == 403
    assert api.get("site1", f"/custody/shipments/{Shipment.create_id('S-2')}").status_code == 403


def test_unblinded_answers_only_for_qa_qp_recall_investigators_and_inspectors(
    api: Api, program: Program
) -> None:
    kit = program.kit("K00001")
    for principal, allowed in (
        ("qa1", True),
        ("qp1", True),
        ("recall1", True),
        ("insp1", True),
        ("admin1", False),
        ("mfg1", False),
        ("depot1", False),
    ):
        answer = api.get(principal, f"/trace/kits/{kit}/backward?unblinded=true")
        assert (answer.status_code == 200) == allowed, principal
        blinded = api.get(principal, f"/trace/kits/{kit}/backward").json()
        assert blinded["blinded"] is True and blinded["kit"]["treatment"] is None
    assert api.get("qa1", f"/trace/kits/{kit}/backward?unblinded=true").json()["kit"]["treatment"] == "A"


def test_a_signature_needs_the_signers_own_valid_password_or_a_fresh_second_token(
    api: Api, program: Program
) -> None:
    head = api.head()
    path = f"/lots/{program.api}/hold"
    release = f"/lots/{program.api}/recall"
    wrong = api.post("qa1", release, {"signature": signature("approved", "not the password"), "reason": "x"})
    assert wrong.status_code == 403 and wrong.json()["code"] == "signature_not_verified"
    neither = api.post("qa1", release, {"signature": {"meaning": "approved"}, "reason": "x"})
    assert neither.status_code == 403
    bearer = api.post(
        "qa1", release, {"signature": {"meaning": "approved", "token": api.tokens["qa1"]}, "reason": "x"}
    )
    assert bearer.status_code == 403 and "other than" in bearer.json()["message"]
    old = api.identity.issue_token("qa1", **BY_ADMIN)
    head = api.head()  # the token's issue is recorded; the refused steps below record nothing
    stale = api.client.app.state.settings.signature_token_max_age_seconds
    api.client.app.state.settings.signature_token_max_age_seconds = 0
    assert (
        api.post(
            "qa1", release, {"signature": {"meaning": "approved", "token": old}, "reason": "x"}
        ).status_code
        == 403
    )
    api.client.app.state.settings.signature_token_max_age_seconds = stale
    other = api.post(
        "qa1", release, {"signature": {"meaning": "approved", "token": api.tokens["qa2"]}, "reason": "x"}
    )
    assert other.status_code == 403
    meaning = api.post("qa1", release, {"signature": signature("released"), "reason": "x"})
    assert meaning.status_code == 422 and meaning.json()["code"] == "signature_required"
    assert api.head() == head
    assert api.post("qa1", path, {"reason": "investigation"}).status_code == 200
    fresh = api.identity.issue_token("qa1", **BY_ADMIN)
    answer = api.post("qa1", release, {"signature": {"meaning": "approved", "token": fresh}, "reason": "x"})
    assert answer.status_code == 200, answer.text
