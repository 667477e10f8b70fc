"""A mock recall on the demo program, over the HTTP API: the acceptance test of recall campaigns.

The demo generator writes a two-year trial into the store (without the recall of its last day); QA then
recalls the API lot that reaches the most kits. Every place acknowledges the notice; each site fetches
its task list and reports all its kits in one batch from its own records (dispensed to a subject, sent
back to the depot, quarantined), except one kit it cannot find; the depots quarantine their own stock,
receive the kits sent back and, once QA has authorised it (signed), destroy both; QA justifies every kit
still unaccounted for (the one not found and those the demo lost in transit), which closure refuses
until then, and closes the recall (signed); the inspector's report names the recall, the lot and every
place.

After every step the recall's status (overall, per place and by outcome) is compared with what the
test expects from the kits' own records -- the forward trace for where each kit was, the ledger for
what became of it, the test's own steps for what was reported -- never from an earlier status answer.
Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import html
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from api.schemas.recalls import MAX_KITS
from ledger.application import Ledger
from ledger.domain import Kit, Location
from ledger.values import Role
from scripts.demo import generate, gln
from tests.api.conftest import USERS, Api, signature, start_api

SEED = 1
SCALE = 0.15
"""About 1,300 events. With this seed the top API lot reaches two depots, three sites, dispensed and
returned kits, kits destroyed before the recall and a kit lost in transit (the preconditions below
fail loudly if a change to the generator takes any of that away)."""

RECALL = "RC-DEMO-0001"
STAFF = ("qa1", "depot1", "recall1", "insp1")
CLINICAL_SITE, DEPOT = "clinical_site", "depot"

ACCOUNTED = frozenset({"dispensed", "received_at_depot", "destroyed", "destroyed_before_recall", "justified"})
"""Outcomes that account for a kit wherever it is; a kit reported `returned` is on its way back until the
depot has it, and one `quarantined` counts only where a depot holds it (at a site it is held, not back)."""

SITE_REPORT = {
    "dispensed": "dispensed",
    "received": "returned",
    "returned": "returned",
    "damaged": "returned",
    "quarantined": "quarantined",
    "pending_destruction": "quarantined",
}
"""What a site reports for a kit in each status of its records."""

LEFT_TO_QA = frozenset({"missing", "in_transit"})
"""Statuses of kits no place can report: QA justifies them."""

QUARANTINABLE = frozenset({"available", "received", "returned", "damaged"})
"""Statuses a recall's quarantine changes (a kit already quarantined or awaiting destruction stays)."""

RETURNABLE = frozenset(s for s, outcome in SITE_REPORT.items() if outcome == "returned")


@dataclass
class Place:
    """A place of the recall as the forward trace shows it: the kits it held (or that travelled to it)."""

    id: str
    name: str
    kind: str
    kit_ids: list[str] = field(default_factory=list)


@dataclass
class Campaign:
    """What the test expects of the recall: each kit's place and number (forward trace) and outcome."""

    lot: dict[str, Any]
    places: dict[str, Place]
    numbers: dict[str, str]
    outcome: dict[str, str]

    def of_kind(self, kind: str) -> list[Place]:
        return sorted((p for p in self.places.values() if p.kind == kind), key=lambda p: p.name)

    def all_kits(self) -> list[str]:
        return [k for p in self.places.values() for k in p.kit_ids]

    def mark(self, kit_ids: Sequence[str], outcome: str) -> None:
        self.outcome.update(dict.fromkeys(kit_ids, outcome))

    def figures(self, place_id: str | None = None) -> tuple[int, int, int, int]:
        """(kits, reported, reconciled, outstanding), overall or at one place."""
        places = list(self.places.values()) if place_id is None else [self.places[place_id]]
        kits = [(k, p.kind) for p in places for k in p.kit_ids]
        reported = sum(1 for k, _ in kits if k in self.outcome)
        reconciled = sum(1 for k, kind in kits if self.accounts(self.outcome.get(k), kind))
        return len(kits), reported, reconciled, len(kits) - reconciled

    @staticmethod
    def accounts(outcome: str | None, kind: str) -> bool:
        return outcome in ACCOUNTED or (outcome == "quarantined" and kind == DEPOT)

    def outcomes(self) -> dict[str, int]:
        return dict(sorted(Counter(self.outcome.values()).items()))

    def by_number(self, kit_ids: Sequence[str]) -> list[str]:
        return sorted(kit_ids, key=lambda k: self.numbers[k])


@pytest.fixture
def demo_api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    """The demo program written into the store, then the app on it (no users yet)."""
    ledger = Ledger.open(database_url, keys_dir=tmp_path / "keys")  # the app's writer key, as in start_api
    try:
        generate(ledger, seed=SEED, scale=SCALE, progress=False, recall=False)
    finally:
        ledger.close()
    yield from start_api(database_url, tmp_path)


# --- reading ------------------------------------------------------------------------------------------


def ok(response: Any, code: int = 200) -> Any:
    assert response.status_code == code, response.text
    return response.json()


def fresh(answer: dict[str, Any]) -> dict[str, Any]:
    """A read-side answer that has applied every event (so it is the genealogy as of now)."""
    assert answer["freshness"]["lag"] == 0, answer["freshness"]
    return answer


def status_of(api: Api, kit_id: str) -> str:
    """The kit's status in the ledger: what the place's own records say."""
    return str(api.ledger.get(Kit, UUID(kit_id)).status)


def chunks(ids: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(ids), MAX_KITS):
        yield list(ids[start : start + MAX_KITS])


def custody_actions(api: Api, kit_id: str) -> list[str]:
    return [step["action"] for step in ok(api.get("recall1", f"/custody/kits/{kit_id}"))["steps"]]


def api_lot_reaching_most_kits(api: Api) -> tuple[dict[str, Any], dict[str, Any]]:
    """The API lot whose forward trace reaches the most kits (ties: the lowest lot number), and that trace."""
    stock = fresh(ok(api.get("recall1", "/inventory/lots", params={"kind": "api", "include_empty": True})))
    lots = {row["lot"]["id"]: row["lot"] for row in stock["lots"]}
    assert len(lots) >= 2, "the demo has several API lots"
    forward = {lot_id: fresh(ok(api.get("recall1", f"/trace/lots/{lot_id}/forward"))) for lot_id in lots}
    chosen = min(lots, key=lambda i: (-forward[i]["total_kits"], lots[i]["lot_number"]))
    return lots[chosen], forward[chosen]


def reached_kits(api: Api, lot_id: str) -> list[dict[str, Any]]:
    """Every kit the lot reached, page by page."""
    kits: list[dict[str, Any]] = []
    while True:
        path = f"/trace/lots/{lot_id}/forward/kits"
        page = fresh(ok(api.get("recall1", path, params={"limit": 1000, "offset": len(kits)})))
        kits += page["items"]
        if not page["items"] or len(kits) >= page["total"]:
            assert len(kits) == page["total"]
            return kits


def campaign_for(api: Api, lot: dict[str, Any], forward: dict[str, Any]) -> Campaign:
    """The expectation: the trace's kits grouped by place, those destroyed before the recall accounted."""
    kits = reached_kits(api, lot["id"])
    assert len(kits) == forward["total_kits"]
    places = {
        p["place"]["id"]: Place(p["place"]["id"], p["place"]["name"], p["place"]["kind"])
        for p in forward["places"]
    }
    for kit in kits:
        places[kit["place"]["id"]].kit_ids.append(kit["id"])
    assert {i: len(p.kit_ids) for i, p in places.items()} == {
        p["place"]["id"]: p["total"] for p in forward["places"]
    }
    destroyed = [k["id"] for k in kits if status_of(api, k["id"]) == "destroyed"]
    numbers = {k["id"]: k["kit_number"] for k in kits}
    return Campaign(lot, places, numbers, dict.fromkeys(destroyed, "destroyed_before_recall"))


def check_status(api: Api, rid: str, c: Campaign) -> dict[str, Any]:
    """The recall's figures, overall, per place and by outcome, are those the test expects."""
    s = ok(api.get("recall1", f"/recalls/{rid}/status"))
    kits, _, reconciled, _ = c.figures()
    assert (s["kits"], s["reported"], s["reconciled"], s["outstanding"]) == c.figures()
    assert s["reconciled_percent"] == round(100 * reconciled / kits, 1)
    got = {p["place_id"]: (p["kits"], p["reported"], p["reconciled"], p["outstanding"]) for p in s["places"]}
    assert got == {place_id: c.figures(place_id) for place_id in c.places}
    assert s["outcomes"] == c.outcomes()
    return s


# --- the steps ----------------------------------------------------------------------------------------


def add_staff(api: Api) -> None:
    """QA, depot (bound to the demo's depots), recall investigator and inspector."""
    # the demo's regional depots and its back-up depot
    depots = (*(Location.create_id(gln(2 + n)) for n in range(2)), Location.create_id(gln(9)))
    for principal in STAFF:
        role, name = USERS[principal]
        api.add_user(principal, role, name, depots if role == Role.DEPOT else ())


def add_site_users(api: Api, c: Campaign) -> dict[str, str]:
    """One site user per clinical site of the recall, bound to that site only; by site id."""
    users = {}
    for n, site in enumerate(c.of_kind(CLINICAL_SITE), 1):
        users[site.id] = f"site-{n}"
        api.add_user(users[site.id], Role.SITE, f"Site User {n}", (UUID(site.id),))
    return users


def check_preconditions(api: Api, c: Campaign) -> None:
    """The demo gives the recall something to do at every step (else the test would prove little)."""
    statuses = Counter(status_of(api, k) for k in c.all_kits())
    assert len(c.of_kind(CLINICAL_SITE)) >= 2 and len(c.of_kind(DEPOT)) >= 1, c.places
    assert all(place.kind in (CLINICAL_SITE, DEPOT) for place in c.places.values())
    assert any(status_of(api, k) == "available" for d in c.of_kind(DEPOT) for k in d.kit_ids)
    assert statuses["dispensed"] > 0 and statuses["destroyed"] > 0 and statuses["missing"] > 0, statuses
    assert sum(statuses[s] for s in RETURNABLE) >= 2, statuses
    assert set(statuses) <= set(SITE_REPORT) | LEFT_TO_QA | {"destroyed", "available"}, statuses


def open_recall(api: Api, c: Campaign) -> str:
    """QA opens the recall of the lot, all kits, signed."""
    opened = api.post(
        "qa1",
        "/recalls",
        {
            "recall_number": RECALL,
            "lot_ids": [c.lot["id"]],
            "reason": f"{c.lot['lot_number']}: mock recall, nitrosamine above the acceptable intake",
            "classification": "class_ii",
            "scope": "all_kits",
            "signature": signature("approved"),
        },
    )
    rid: str = ok(opened, 201)["id"]
    return rid


def acknowledge_all(api: Api, rid: str, c: Campaign, users: dict[str, str]) -> None:
    """Every site (its own user) and depot (the depot user) acknowledges; the count follows each one."""
    order = c.of_kind(CLINICAL_SITE) + c.of_kind(DEPOT)
    for n, place in enumerate(order, 1):
        ok(api.post(users.get(place.id, "depot1"), f"/recalls/{rid}/sites/{place.id}/acknowledgement"))
        s = check_status(api, rid, c)
        assert (s["places_notified"], s["places_acknowledged"]) == (len(order), n)
        assert s["acknowledged_percent"] == round(100 * n / len(order), 1)
    assert all(p["acknowledged_at"] is not None for p in s["places"])
    assert s["acknowledged_percent"] == 100.0


def kit_not_found(api: Api, c: Campaign) -> str:
    """The kit one site could send back but cannot find: the first returnable kit of the first site."""
    return next(
        k
        for site in c.of_kind(CLINICAL_SITE)
        for k in c.by_number(site.kit_ids)
        if status_of(api, k) in RETURNABLE
    )


def report_lines(api: Api, site: Place, unreported: str, keep: bool) -> list[dict[str, str]]:
    """The site's report from its own records: each kit's status says what it reports (a site that
    `keep`s its kits quarantines what it would send back, to destroy it on site)."""
    lines = []
    for kit_id in site.kit_ids:
        kit = api.ledger.get(Kit, UUID(kit_id))
        outcome = SITE_REPORT.get(str(kit.status))
        if keep and outcome == "returned":
            outcome = "quarantined"
        if outcome is None or kit_id == unreported:
            continue
        line = {"kit_id": kit_id, "outcome": outcome}
        if outcome == "dispensed":
            assert kit.subject
            line["subject"] = kit.subject
        lines.append(line)
    return lines


def report_site(
    api: Api, rid: str, c: Campaign, site: Place, user: str, unreported: str, keep: bool = False
) -> list[str]:
    """The site reads its task list (its own kits only) and reports them in one batch; returns the kits
    it sent back."""
    tasks = ok(api.get(user, f"/recalls/{rid}/sites/{site.id}/tasks"))
    assert tasks["acknowledged_at"] is not None and tasks["recall_number"] == RECALL
    assert {k["kit_id"]: k["status_at_open"] for k in tasks["kits"]} == {
        k: status_of(api, k) for k in site.kit_ids
    }
    assert {k["kit_id"]: k["outcome"] for k in tasks["kits"]} == {k: c.outcome.get(k) for k in site.kit_ids}
    lines = report_lines(api, site, unreported, keep)
    sent_back = [line["kit_id"] for line in lines if line["outcome"] == "returned"]
    held = [
        line["kit_id"]
        for line in lines
        if line["outcome"] == "quarantined" and status_of(api, line["kit_id"]) in QUARANTINABLE
    ]
    if lines:
        written = ok(api.post(user, f"/recalls/{rid}/sites/{site.id}/reports", {"kits": lines}))
        # a recall report per kit, a return for each sent back, a quarantine for each newly held
        assert len(written["events"]) == len(lines) + len(sent_back) + len(held)
    for line in lines:
        c.mark([line["kit_id"]], line["outcome"])
    return sent_back


def quarantine_depot_stock(api: Api, rid: str, c: Campaign) -> list[str]:
    """Each depot reports the recall's kits it holds quarantined, in one batch."""
    quarantined = []
    for depot in c.of_kind(DEPOT):
        kits = [k for k in depot.kit_ids if k not in c.outcome]
        assert all(status_of(api, k) == "available" for k in kits)
        for chunk in chunks(kits):
            lines = [{"kit_id": k, "outcome": "quarantined"} for k in chunk]
            ok(api.post("depot1", f"/recalls/{rid}/sites/{depot.id}/reports", {"kits": lines}))
        c.mark(kits, "quarantined")
        quarantined += kits
    return quarantined


def by_depot(api: Api, kit_ids: Sequence[str], where: str) -> dict[str, list[str]]:
    """The kits grouped by the depot their `where` attribute (destination_id, location_id) names."""
    grouped: dict[str, list[str]] = defaultdict(list)
    for k in kit_ids:
        grouped[str(getattr(api.ledger.get(Kit, UUID(k)), where))].append(k)
    return grouped


def receive_returns(api: Api, rid: str, c: Campaign, sent_back: list[str]) -> None:
    """Each depot receives the kits sent back to it."""
    assert {status_of(api, k) for k in sent_back} == {"in_transit"}
    for depot_id, kits in by_depot(api, sent_back, "destination_id").items():
        for chunk in chunks(kits):
            ok(api.post("depot1", f"/recalls/{rid}/returns", {"depot_id": depot_id, "kit_ids": chunk}))
    c.mark(sent_back, "received_at_depot")
    assert {status_of(api, k) for k in sent_back} == {"returned"}


def destroy_at_depots(api: Api, rid: str, c: Campaign, doomed: list[str]) -> None:
    """QA authorises the destruction (signed); each depot destroys what it holds through the recall."""
    for chunk in chunks(doomed):
        ok(
            api.post(
                "qa1",
                "/kits/destruction-authorisations",
                {
                    "kit_ids": chunk,
                    "signature": signature("authorised_destruction"),
                    "reason": f"recall {RECALL}",
                },
            )
        )
    for n, (depot_id, kits) in enumerate(sorted(by_depot(api, doomed, "location_id").items()), 1):
        for chunk in chunks(kits):
            body = {
                "place_id": depot_id,
                "kit_ids": chunk,
                "certificate": f"DC-RC-{n}",
                "method": "incineration",
            }
            ok(api.post("depot1", f"/recalls/{rid}/destructions", body))
    c.mark(doomed, "destroyed")
    assert {status_of(api, k) for k in doomed} == {"destroyed"}


def destroy_at_sites(api: Api, rid: str, c: Campaign, users: dict[str, str]) -> list[str]:
    """Each site destroys the kits it quarantined, on site and through the recall, once QA authorised
    it (signed); a kit whose destruction QA had authorised before the recall needs no second one."""
    destroyed = []
    for n, site in enumerate(c.of_kind(CLINICAL_SITE), 1):
        held = [k for k in site.kit_ids if c.outcome.get(k) == "quarantined"]
        unauthorised = [k for k in held if status_of(api, k) != "pending_destruction"]
        for chunk in chunks(unauthorised):
            body = {"kit_ids": chunk, "signature": signature("authorised_destruction"), "reason": RECALL}
            ok(api.post("qa1", "/kits/destruction-authorisations", body))
        for chunk in chunks(held):
            body = {"place_id": site.id, "kit_ids": chunk, "certificate": f"DC-S{n}", "method": "burnt"}
            ok(api.post(users[site.id], f"/recalls/{rid}/destructions", body))
        c.mark(held, "destroyed")
        destroyed += held
    return destroyed


def justify(api: Api, rid: str, c: Campaign, kit_id: str) -> None:
    """QA's signed justification for a kit nobody can account for."""
    why = {
        "missing": "reported missing on receipt; carrier claim and deviation opened",
        "in_transit": "lost with its shipment; carrier claim and deviation opened",
    }.get(status_of(api, kit_id), "not found after two searches at the site; deviation opened")
    body = {"justification": f"Kit {c.numbers[kit_id]} {why}", "signature": signature("approved")}
    ok(api.post("qa1", f"/recalls/{rid}/kits/{kit_id}/justification", body))


# --- the test -----------------------------------------------------------------------------------------


def test_mock_recall_of_the_demo_program_over_the_api(demo_api: Api) -> None:
    api = demo_api
    # 1. users; the lot to recall and what the recall should find, from the genealogy
    add_staff(api)
    lot, forward = api_lot_reaching_most_kits(api)
    c = campaign_for(api, lot, forward)
    check_preconditions(api, c)
    users = add_site_users(api, c)
    lost = [k for k in c.all_kits() if status_of(api, k) in LEFT_TO_QA]
    in_transit = [k for k in lost if status_of(api, k) == "in_transit"]

    # 2. QA opens the recall: every kit the lot reaches, those destroyed before it already accounted for
    rid = open_recall(api, c)
    s = check_status(api, rid, c)
    assert s["kits"] == forward["total_kits"] and s["status"] == "open"
    assert s["reported"] == s["reconciled"] == s["outcomes"]["destroyed_before_recall"] > 0
    assert (s["places_notified"], s["places_acknowledged"], s["acknowledged_percent"]) == (
        len(c.places),
        0,
        0.0,
    )
    assert [lt["lot_number"] for lt in s["lots"]] == [lot["lot_number"]]
    assert {p["place_id"]: (p["name"], p["kind"]) for p in s["places"]} == {
        p.id: (p.name, p.kind) for p in c.places.values()
    }
    assert sum(t["kits"] for t in s["shipments_in_transit"]) == len(in_transit)
    assert s["reconciled_at"] is None

    # 3. every place acknowledges
    acknowledge_all(api, rid, c, users)

    # 4. each site reports its kits in one batch, from its own records; one site cannot find one kit
    sites = c.of_kind(CLINICAL_SITE)
    assert api.get(users[sites[0].id], f"/recalls/{rid}/sites/{sites[1].id}/tasks").status_code == 403
    unreported = kit_not_found(api, c)
    sent_back: list[str] = []
    for site in sites:
        keep = site is sites[0]  # the first site keeps its kits and destroys them on site (step 6b)
        sent_back += report_site(api, rid, c, site, users[site.id], unreported, keep)
        check_status(api, rid, c)
    assert sent_back, "sites sent kits back"
    returning = ok(api.get("recall1", f"/custody/kits/{sent_back[0]}"))["steps"][-1]
    assert returning["action"] == "sent_back" and returning["to_place"]["kind"] == DEPOT

    # 5. the depots quarantine their stock and receive every kit sent back
    quarantined = quarantine_depot_stock(api, rid, c)
    assert quarantined
    check_status(api, rid, c)
    receive_returns(api, rid, c, sent_back)
    s = check_status(api, rid, c)
    assert s["outcomes"]["received_at_depot"] == len(sent_back)

    # 6. QA authorises the destruction of everything now at the depots for this recall; they destroy it
    destroy_at_depots(api, rid, c, sent_back + quarantined)
    s = check_status(api, rid, c)
    assert s["outcomes"]["destroyed"] == len(sent_back) + len(quarantined)
    assert "received_at_depot" not in s["outcomes"]
    assert custody_actions(api, sent_back[0])[-3:] == ["sent_back", "received_back", "destroyed"]

    # 6b. what the sites quarantined is held there, not back: each site destroys it on site
    on_sites = destroy_at_sites(api, rid, c, users)
    s = check_status(api, rid, c)
    assert on_sites and "quarantined" not in s["outcomes"]
    assert s["outcomes"]["destroyed"] == len(sent_back) + len(quarantined) + len(on_sites)

    # 7. what is left: the kit not found and the kits lost in transit; closure waits for QA's justifications
    left = c.by_number([unreported, *lost])
    outstanding = ok(api.get("recall1", f"/recalls/{rid}/outstanding", params={"limit": 1000}))
    assert outstanding["total"] == len(left)
    assert [k["kit_id"] for k in outstanding["items"]] == left
    refused = api.post("qa1", f"/recalls/{rid}/closure", {"signature": signature("approved")})
    assert refused.status_code == 409 and refused.json()["code"] == "recall_outstanding", refused.text
    assert refused.json()["kit_numbers"] == [c.numbers[k] for k in left]
    for kit_id in left:
        justify(api, rid, c, kit_id)
    c.mark(left, "justified")
    s = check_status(api, rid, c)
    assert (s["reconciled"], s["outstanding"], s["reconciled_percent"]) == (s["kits"], 0, 100.0)
    assert s["reconciled_at"] is not None and s["status"] == "open"
    ok(api.post("qa1", f"/recalls/{rid}/closure", {"signature": signature("approved")}))
    s = check_status(api, rid, c)
    assert s["status"] == "closed" and s["closed_at"] is not None

    # 8. the inspector's report names the recall, the lot and every place
    page = api.get("insp1", f"/recalls/{rid}/report")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for text in (RECALL, lot["lot_number"], *(p.name for p in c.places.values())):
        assert html.escape(text) in page.text, text
