"""The demo trial closed out site by site over HTTP, on both stores: each site settles what it still
holds (receives what is on its way, sends back what it holds, destroys what QA already authorised for
destruction), is deactivated and closed out by QA; every site's drug accountability adds up to what
was delivered, with nothing left open."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from ledger.application import Ledger
from ledger.domain import Location, Shipment
from ledger.domain.location import SiteStatus
from ledger.values import Role
from scripts.demo import DemoSummary, generate, gln
from tests.api.conftest import USERS, Api, signature, start_api

SEED = 1
SCALE = 0.15
OPEN = ("in_transit", "on_hand", "damaged", "returned_by_subject")


@pytest.fixture
def demo(database_url: str, tmp_path: Path) -> Iterator[tuple[Api, DemoSummary]]:
    """The demo program (without its last-day recall), then the app on it."""
    ledger = Ledger.open(database_url, keys_dir=tmp_path / "keys")
    try:
        summary = generate(ledger, seed=SEED, scale=SCALE, progress=False, recall=False)
    finally:
        ledger.close()
    for api in start_api(database_url, tmp_path):
        yield api, summary


def ok(answer: Any, status: int = 200) -> Any:
    assert answer.status_code == status, answer.text
    return answer.json()


def accountability(api: Api, user: str, site: UUID) -> dict[str, Any]:
    report = ok(api.get(user, f"/sites/{site}/accountability"))
    assert sum(report["counts"].values()) == report["delivered"] == report["kits"]["total"]
    return dict(report)


def settle(api: Api, user: str, site: UUID, depot: UUID) -> None:
    """The site receives every shipment still on its way, sends back what it holds, and destroys what
    QA had already authorised for destruction."""
    report = accountability(api, user, site)
    travelling = {k["shipment_number"] for k in report["kits"]["items"] if k["outcome"] == "in_transit"}
    for number in sorted(travelling):
        shipment = ok(api.get(user, f"/sites/{site}/shipments/{Shipment.create_id(number)}"))
        outcomes = dict.fromkeys(shipment["kit_numbers"], "received")
        ok(api.post(user, f"/sites/{site}/shipments/{shipment['id']}/receipt", {"outcomes": outcomes}))
    held = [k for k in accountability(api, user, site)["kits"]["items"] if k["outcome"] in OPEN]
    doomed = [k["kit_id"] for k in held if k["status"] == "pending_destruction"]
    back = [k["kit_id"] for k in held if k["status"] != "pending_destruction"]
    if back:
        body = {"depot_id": str(depot), "kit_ids": back, "reason": "site close-out: unused stock"}
        ok(api.post(user, f"/sites/{site}/returns", body))
    if doomed:
        body = {"kit_ids": doomed, "certificate": f"DC-CLOSE-{str(site)[:8]}", "method": "incineration"}
        ok(api.post(user, f"/locations/{site}/destructions", body))


def test_every_site_of_the_demo_trial_closes_out_and_accounts_for_every_kit(
    demo: tuple[Api, DemoSummary],
) -> None:
    api, summary = demo
    for principal in ("admin1", "qa1"):
        api.add_user(principal, *USERS[principal])
    depot = Location.create_id(gln(2))
    active = [
        site.id
        for site in (api.ledger.get(Location, Location.create_id(gln(100 + n))) for n in range(summary.sites))
        if site.status == SiteStatus.ACTIVATED
    ]
    assert len(active) >= 3
    for n, site in enumerate(active):
        user = f"site-{n}"
        api.add_user(user, Role.SITE, f"Site User {n}", (site,))
        before = accountability(api, user, site)
        assert before["delivered"] > 0 and any(before["counts"][o] for o in OPEN)
        ok(api.post("admin1", f"/sites/{site}/deactivation", {"reason": "trial closing: last subject out"}))
        refused = api.post("qa1", f"/sites/{site}/close-out", {"signature": signature("approved")})
        assert refused.status_code == 409 and refused.json()["code"] == "site_not_reconciled", refused.text
        settle(api, user, site, depot)
        ok(api.post("qa1", f"/sites/{site}/close-out", {"signature": signature("approved")}))
        after = accountability(api, user, site)
        assert after["delivered"] == before["delivered"]
        assert not any(after["counts"][o] for o in OPEN), after["counts"]
        assert api.ledger.get(Location, site).status == SiteStatus.CLOSED_OUT
    # from the stock read model too: no clinical site holds a kit any more
    stock = ok(api.get("qa1", "/inventory/kits"))
    sites = [p for p in stock["places"] if p["place"]["kind"] == "clinical_site"]
    ended = {"dispensed", "destroyed", "missing"}
    assert sites and all(set(p["by_status"]) <= ended for p in sites), sites
