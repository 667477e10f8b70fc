"""A whole clinical supply program driven over HTTP, as its people would: from raw-material lots to a
site's receipt and dispensing, then a recall investigation and an inspector's export.

`run_program(client, identity)` works with any httpx client: the ASGI app in-process (FastAPI's
TestClient) or a real server on loopback. Only the users are made directly, as `lotline users add`
would (site staff once their site is registered).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx

from ledger.gs1 import with_check_digit
from ledger.identity import Identity
from ledger.values import Role
from tests.builders import BY_ADMIN

PASSWORD = "correct horse battery staple"
KITS_PER_ARM = 240  # 480 kits: the packaging answer names more events than one chain lookup chunk holds


def gtin(n: int) -> str:
    return with_check_digit(f"040000000{n:04d}")


def gln(n: int) -> str:
    return with_check_digit(f"40000000{n:04d}")


@dataclass
class Driver:
    """One HTTP client and the token of each user; `call` asserts the status and returns the body."""

    client: httpx.Client
    identity: Identity
    tokens: dict[str, str] = field(default_factory=dict)
    events: int = 0
    position: int = 0
    """The position of the last write: every read waits for it (`?after=`), as docs/api.md asks."""

    def user(self, principal: str, role: Role, name: str, places: tuple[Any, ...] = ()) -> None:
        """The first admin is made at the server's console (`lotline users add`); the others by that
        admin over HTTP, as an administrator would."""
        if not self.tokens:
            made = self.identity.add_user(
                principal, name=name, role=role, places=places, password=PASSWORD, **BY_ADMIN
            )
            issued = self.identity.issue(principal, label="e2e", **BY_ADMIN)
            self.tokens[principal] = issued.secret
            self.events += len(made.events) + len(issued.recorded.events)
            return
        body = {"principal": principal, "name": name, "role": role, "places": [str(p) for p in places],
                "password": PASSWORD, "reason": "e2e programme staff"}
        self.post("admin1", "/users", body, 201)
        first = {"label": "e2e", "reason": "first token"}
        self.tokens[principal] = self.post("admin1", f"/users/{principal}/tokens", first, 201)["token"]

    def call(
        self,
        method: str,
        who: str,
        path: str,
        body: Any = None,
        status: int = 200,
        headers: dict[str, str] | None = None,
        **params: Any,
    ) -> Any:
        answer = self.client.request(
            method,
            path,
            json=body,
            params=params or None,
            headers={"Authorization": f"Bearer {self.tokens[who]}", **(headers or {})},
        )
        assert answer.status_code == status, (method, path, answer.status_code, answer.text[:2000])
        if method == "GET" and status == 200 and (
            (params or {}).get("unblinded") == "true" or path.startswith("/inspector/export")
        ):
            self.events += 1  # an unblinded read is recorded in the chain before it is answered
        if answer.headers.get("content-type", "").startswith("application/json"):
            found = answer.json()
            if method == "POST" and status < 300 and "idempotent-replayed" not in answer.headers:
                self.events += len(found["events"])
            if method == "POST" and status < 300 and found.get("events"):
                self.position = max(self.position, found["events"][-1]["seq"])
            return found
        return answer.content

    def post(self, who: str, path: str, body: Any, status: int = 200, **kw: Any) -> Any:
        return self.call("POST", who, path, body, status, **kw)

    def get(self, who: str, path: str, status: int = 200, **params: Any) -> Any:
        if self.position and not path.startswith(("/epcis/", "/inspector/")):
            params.setdefault("after", self.position)
        return self.call("GET", who, path, None, status, **params)


def sig(meaning: str) -> dict[str, str]:
    return {"meaning": meaning, "password": PASSWORD}


def run_program(client: httpx.Client, identity: Identity, export_dir: Path) -> dict[str, Any]:
    """The program; returns what a test checks at the end (ids, the recall answers, the export path)."""
    d = Driver(client, identity)
    today = date.today()
    d.user("admin1", Role.ADMIN, "Ada Admin")

    # 1. reference data: trial, plant, depot, one activated site (admin)
    trial = d.post(
        "admin1",
        "/trials",
        {
            "code": "LTL-E2E",
            "title": "Lotlinib vs placebo",
            "sponsor": "Acme",
            "countries": ["DE"],
            "do_not_ship_days": 30,
            "do_not_dispense_days": 7,
        },
        201,
    )["id"]
    plant = d.post(
        "admin1",
        "/locations",
        {"gln": gln(1), "kind": "manufacturing_site", "name": "Plant", "country": "DE"},
        201,
    )["id"]
    depot = d.post(
        "admin1", "/locations", {"gln": gln(2), "kind": "depot", "name": "Depot", "country": "DE"}, 201
    )["id"]
    site = d.post(
        "admin1",
        "/locations",
        {
            "gln": gln(3),
            "kind": "clinical_site",
            "name": "Site 101",
            "country": "DE",
            "trial_id": trial,
            "site_number": "101",
        },
        201,
    )["id"]
    d.post("admin1", f"/sites/{site}/activation", {})
    for principal, role, name, sites in (
        ("mfg1", Role.MANUFACTURING, "Max Maker", (plant, depot)),
        ("mfg2", Role.MANUFACTURING, "Mia Checker", (plant, depot)),
        ("qa1", Role.QA, "Quinn QA", ()),
        ("qp1", Role.QP, "Pat QP", ()),
        ("depot1", Role.DEPOT, "Dee Depot", (depot,)),
        ("site1", Role.SITE, "Sam Site", (site,)),
        ("recall1", Role.RECALL_INVESTIGATOR, "Rita Recall", ()),
        ("insp1", Role.INSPECTOR, "Ines Inspector", ()),
    ):
        d.user(principal, role, name, sites)

    # 2. goods receipt of API, excipient and bought-in placebo; QA releases each on its certificate
    def receive(number: str, kind: str, amount: str, unit: str, item: int, days: int) -> str:
        lot = d.post(
            "mfg1",
            "/lots",
            {
                "gtin": gtin(item),
                "lot_number": number,
                "kind": kind,
                "material": number.lower(),
                "quantity": {"amount": amount, "unit": unit},
                "location_id": plant,
                "manufactured_on": (today - timedelta(days=60)).isoformat(),
                "expires_on": (today + timedelta(days=days)).isoformat(),
                "supplier": "Supplier AG",
            },
            201,
        )["id"]
        d.post("qa1", f"/lots/{lot}/release", {"signature": sig("released"), "results_ref": f"COA-{number}"})
        return lot

    api_lot = receive("API-1", "api", "2", "kg", 10, 900)
    excipient = receive("EXC-1", "excipient", "20", "kg", 20, 1000)
    placebo = receive("PLC-1", "drug_product", "2400", "unit", 50, 700)

    # 3. formulation, checked by a second person who re-authenticates; QA releases the drug product
    made = d.post(
        "mfg1",
        "/batches",
        {
            "batch_number": "B-1",
            "product": "Lotlinib 10 mg",
            "location_id": plant,
            "inputs": [
                {"lot_id": api_lot, "quantity": {"amount": "600", "unit": "g"}},
                {"lot_id": excipient, "quantity": {"amount": "5", "unit": "kg"}},
            ],
            "output": {
                "gtin": gtin(30),
                "lot_number": "DP-1",
                "material": "Lotlinib 10 mg tablets",
                "expires_on": (today + timedelta(days=800)).isoformat(),
            },
            "theoretical_yield": {"amount": "2500", "unit": "unit"},
            "actual_yield": {"amount": "2450", "unit": "unit"},
            "equipment": ["MIX-1"],
            "checked_by": {"principal": "mfg2", "password": PASSWORD},
        },
        201,
    )
    dp = made["dp_lot_id"]
    d.post("qa1", f"/lots/{dp}/release", {"signature": sig("released"), "results_ref": "QC-DP-1"})

    # 3b. the drug product and the placebo go from the plant to the depot that packages them: sent
    #     by the plant, received by the depot
    for lot, number in ((dp, "TR-1"), (placebo, "TR-2")):
        transfer = {"transfer_number": number, "from_id": plant, "to_id": depot}
        d.post("mfg1", f"/lots/{lot}/transfers", transfer)
        d.post("depot1", f"/lots/{lot}/transfers/receipt", {"location_id": depot})

    # 4. packaging into blinded kits, then QA disposition, QP certification, sponsor release for DE
    kit_list = [
        {"kit_number": f"K{i:05d}", "treatment": "A" if i % 2 else "P"}
        for i in range(1, 2 * KITS_PER_ARM + 1)
    ]
    units = KITS_PER_ARM * 10
    run = d.post(
        "mfg1",
        "/packaging-runs",
        {
            "batch_number": "P-1",
            "trial_id": trial,
            "location_id": depot,
            "kit_gtin": gtin(40),
            "label_version": "v1",
            "arms": [
                {"treatment": "A", "dp_lot_id": dp, "units_per_kit": 10, "units_issued": units},
                {"treatment": "P", "dp_lot_id": placebo, "units_per_kit": 10, "units_issued": units},
            ],
            "kit_list": kit_list,
            "checked_by": {"principal": "mfg2", "password": PASSWORD},
        },
        201,
    )
    assert len(run["events"]) == 1 + 2 + 2 * KITS_PER_ARM  # run, two consumed lots, every kit
    run_id = run["id"]
    d.post("qa1", f"/packaging-runs/{run_id}/disposition", {"released": True, "signature": sig("released")})
    d.post("qp1", f"/packaging-runs/{run_id}/certification", {"signature": sig("certified")})
    d.post(
        "qa1",
        f"/packaging-runs/{run_id}/sponsor-releases",
        {"country": "DE", "signature": sig("sponsor_released")},
    )

    # 5. the depot ships 20 kits; the site checks them off (one damaged), retrying once over a bad line
    kit_ids = [d.get("depot1", "/ids/kit", gtin=gtin(40), number=f"K{i:05d}")["id"] for i in range(1, 21)]
    shipment = d.post(
        "depot1",
        "/shipments",
        {
            "shipment_number": "S-1",
            "sscc": with_check_digit("34000000000000001"),
            "from_id": depot,
            "to_id": site,
            "kit_ids": kit_ids,
            "min_celsius": "2",
            "max_celsius": "8",
            "logger_id": "LOG-1",
        },
        201,
    )["id"]
    inbound = d.get("site1", f"/sites/{site}/shipments/{shipment}")
    outcomes = {number: "received" for number in inbound["kit_numbers"]}
    outcomes["K00020"] = "damaged"
    receipt = {"outcomes": outcomes, "logger_min": "3.5", "logger_max": "7.9"}
    key = {"Idempotency-Key": "receipt-S-1-attempt"}
    first = d.post("site1", f"/sites/{site}/shipments/{shipment}/receipt", receipt, headers=key)
    assert d.post("site1", f"/sites/{site}/shipments/{shipment}/receipt", receipt, headers=key) == first
    assert first["excursion"] is False and len(first["events"]) == 21
    d.post("site1", f"/sites/{site}/kits/{kit_ids[0]}/dispensing", {"subject": "SUBJ-0001"})

    # 6. the API lot is found suspect: QA recalls it, the investigator sizes the recall
    d.post(
        "qa1", f"/lots/{api_lot}/recall", {"signature": sig("approved"), "reason": "nitrosamine above limit"}
    )
    impact = d.get("recall1", "/recalls/impact", lot_id=api_lot, unblinded="true")
    kits = d.get("recall1", "/recalls/impact/kits", lot_id=api_lot, unblinded="true", limit=1000)
    refused = d.post("site1", f"/sites/{site}/kits/{kit_ids[2]}/dispensing", {"subject": "SUBJ-0002"}, 409)

    # 7. the inspector verifies the log and takes the export away
    verification = d.get("insp1", "/inspector/verification")
    archive = d.get("insp1", "/inspector/export")
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        z.extractall(export_dir)
    return {
        "events": d.events,
        "impact": impact,
        "kits": kits,
        "refused": refused,
        "site": site,
        "verification": verification,
        "head": d.get("insp1", "/inspector/head"),
        "export": export_dir,
    }
