"""Access administration in the chain (EU GMP Annex 11, 12.3), over HTTP on both stores: creating a
user, granting and revoking roles, binding and unbinding places, disabling, enabling, setting a
password and issuing or revoking tokens are each an event of the user's account, with who did it and
why, never with a secret; authorisation follows the account as those events leave it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from ledger.domain.account import account_id
from ledger.identity import token_hash
from tests.api.conftest import DEPOT, PASSWORD, SITE, Api
from tests.builders import Program

NEW_PASSWORD = "another long password"


def trail(api: Api, principal: str) -> list[dict[str, Any]]:
    answer = api.get("insp1", f"/audit/{account_id(principal)}")
    assert answer.status_code == 200, answer.text
    return list(answer.json()["entries"]["items"])


def created(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    answer = api.post("admin1", "/users", body)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def test_every_access_change_is_an_event_with_who_and_why_and_no_secret(api: Api, program: Program) -> None:
    size = api.head()[0]
    # The admin creates a site user with a password, then issues them a token.
    body = {
        "principal": "site7",
        "name": "Sol Seven",
        "role": "site",
        "places": [str(SITE)],
        "password": PASSWORD,
        "reason": "new study nurse, ticket ACC-7",
    }
    made = created(api, body)
    assert made["user"] == {
        "principal": "site7",
        "name": "Sol Seven",
        "role": "site",
        "places": [str(SITE)],
        "disabled": False,
        "can_sign": True,
    }
    issued = api.post("admin1", "/users/site7/tokens", {"label": "tablet", "reason": "ACC-7"})
    assert issued.status_code == 201, issued.text
    token = issued.json()["token"]
    assert issued.json()["token_id"] == token_hash(token)[:16]
    site7 = {"Authorization": f"Bearer {token}"}
    assert api.client.get(f"/inventory/kits?location_id={SITE}", headers=site7).status_code == 200

    # Bound to a place of the wrong kind: refused, nothing recorded.
    head = api.head()
    wrong = api.post("admin1", "/users/site7/places", {"places": [str(DEPOT)], "reason": "cover"})
    assert wrong.status_code == 422 and "a site user works at clinical_site" in wrong.json()["message"]
    assert api.head() == head

    # Role changed to QA (the site is unbound with it), password reset, disabled, enabled.
    role = api.post("admin1", "/users/site7/role", {"role": "qa", "reason": "moved to QA, ACC-8"})
    assert role.status_code == 200 and role.json()["user"]["places"] == [], role.text
    assert api.client.get("/audit/" + str(program.api), headers=site7).status_code == 200  # QA reads it now
    reset = api.post("admin1", "/users/site7/password", {"password": NEW_PASSWORD, "reason": "forgotten"})
    assert reset.status_code == 200, reset.text
    assert api.post("admin1", "/users/site7/disable", {"reason": "left, ACC-9"}).status_code == 200
    assert api.client.get("/recalls", headers=site7).status_code == 401
    again = api.post("admin1", "/users/site7/disable", {"reason": "twice"})
    assert again.status_code == 409  # already disabled: a retry records nothing twice
    assert api.post("admin1", "/users/site7/enable", {"reason": "back, ACC-10"}).status_code == 200
    revoked = api.post("admin1", "/users/site7/tokens/revocation", {"reason": "lost tablet"})
    assert revoked.json()["token_ids"] == [issued.json()["token_id"]]
    assert api.client.get("/recalls", headers=site7).status_code == 401

    # Each change is one event of the account, by the admin, with the reason; the audit trail shows it.
    entries = trail(api, "site7")
    assert [e["event"] for e in entries] == [
        "Registered",
        "TokenIssued",
        "RoleChanged",
        "PasswordSet",
        "Disabled",
        "Enabled",
        "TokensRevoked",
    ]
    assert {e["principal"] for e in entries} == {"admin1"}
    assert [e["reason"] for e in entries][:3] == [
        "new study nurse, ticket ACC-7",
        "ACC-7",
        "moved to QA, ACC-8",
    ]
    assert entries[2]["changes"] == {"previous": "site", "role": "qa", "places": []}
    assert api.head()[0] == size + 7
    found = api.get("insp1", "/audit", params={"event": "UserAccount.Registered", "principal": "admin1"})
    made = [e for e in found.json()["entries"] if e["entity_id"] == str(account_id("site7"))]
    assert [e["reason"] for e in made] == ["new study nurse, ticket ACC-7"]  # the audit search finds it

    # No secret anywhere in the chain: not the password, its hash, the token or the token's hash.
    with api.identity.engine.connect() as conn:
        events = repr(conn.execute(text("SELECT * FROM lotline_events")).all())
        hashes = [h for (h,) in conn.execute(text("SELECT password_hash FROM lotline_passwords"))]
    for secret in (PASSWORD, NEW_PASSWORD, token, token_hash(token), *hashes):
        assert secret not in events
    assert api.identity.verify_password("site7", NEW_PASSWORD).principal == "site7"


def test_only_an_admin_changes_access_and_bad_input_is_refused_naming_the_field(
    api: Api, program: Program
) -> None:
    head = api.head()
    body = {"principal": "qa9", "name": "Q Nine", "role": "qa", "reason": "new QA"}
    for principal in ("qa1", "site1", "insp1"):
        assert api.post(principal, "/users", body).status_code == 403
    assert api.post("site1", "/users/site1/places", {"places": [str(SITE)], "reason": "x"}).status_code == 403
    assert api.get("site1", "/users").status_code == 403
    no_reason = api.post("admin1", "/users", {k: v for k, v in body.items() if k != "reason"})
    assert no_reason.status_code == 422 and "reason" in no_reason.text
    bad = api.post("admin1", "/users", {**body, "principal": "Q NINE"})
    assert bad.status_code == 422 and "principal" in bad.text
    short = api.post("admin1", "/users", {**body, "password": "short"})
    assert short.status_code == 422 and "password" in short.text
    placed = api.post("admin1", "/users", {**body, "places": [str(SITE)]})
    assert placed.status_code == 422 and placed.json()["field"] == "places"
    assert api.post("admin1", "/users", {**body, "principal": "qa1"}).status_code == 409
    assert api.post("admin1", "/users/nobody/disable", {"reason": "x"}).status_code == 404
    last = api.post("admin1", "/users/site1/places/removal", {"places": [str(SITE)], "reason": "x"})
    assert last.status_code == 422 and "bound to no place" in last.json()["message"]
    assert api.head() == head
    # Inspectors and QA read users and their access, never a secret.
    listed = api.get("insp1", "/users")
    assert listed.status_code == 200
    site1 = next(u for u in listed.json() if u["principal"] == "site1")
    assert site1 == {
        "principal": "site1",
        "name": "Sam Site",
        "role": "site",
        "places": [str(SITE)],
        "disabled": False,
        "can_sign": True,
    }
    assert api.get("qa1", "/users/site1").json() == site1


def test_a_binding_takes_effect_at_once_and_an_unbinding_too(api: Api, program: Program) -> None:
    program.at_site(["K00001", "K00002"])
    path = f"/locations/{program.site}/excursions"

    def excursion(kit: str) -> Any:
        body = {
            "kit_ids": [str(program.kit(kit))],
            "min_celsius": "2",
            "max_celsius": "31",
            "duration_minutes": 45,
        }
        return api.post("site2", path, body)

    assert excursion("K00001").status_code == 403  # site2 works at the FR site only
    bound = api.post("admin1", "/users/site2/places", {"places": [str(program.site)], "reason": "cover"})
    assert bound.status_code == 200, bound.text
    assert excursion("K00001").status_code == 200
    gone = api.post("admin1", "/users/site2/places/removal", {"places": [str(program.site)], "reason": "end"})
    assert gone.status_code == 200, gone.text
    assert excursion("K00002").status_code == 403
