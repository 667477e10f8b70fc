"""Builders of valid request bodies for every command, against a `tests.builders.Program`.

Each entry is (path, body, roles the ledger lets do it). Valid bodies let a test reach the
authority check: a refusal then comes from who asks, not from what they sent.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ledger.domain import Shipment
from ledger.gs1 import with_check_digit
from ledger.values import Role
from tests.api.conftest import signature
from tests.builders import DP_GTIN, KIT_GTIN, Program, sscc, today

Command = tuple[str, dict[str, Any], frozenset[Role]]

PRINCIPAL = {
    Role.ADMIN: "admin1",
    Role.MANUFACTURING: "mfg1",
    Role.QA: "qa1",
    Role.QP: "qp1",
    Role.DEPOT: "depot1",
    Role.SITE: "site1",
    Role.RECALL_INVESTIGATOR: "recall1",
    Role.INSPECTOR: "insp1",
}
"""One user per role (see conftest.USERS)."""


def commands(p: Program) -> dict[str, Command]:
    """Every command route with a well-formed body; `p` is a released program."""
    kit = str(p.kit("K00001"))
    soon = (today() + timedelta(days=300)).isoformat()
    checker = {"principal": "mfg2", "password": "correct horse battery staple"}
    return {
        "register_trial": (
            "/trials",
            {
                "code": "LTL-202",
                "title": "t",
                "sponsor": "s",
                "countries": ["DE"],
                "do_not_ship_days": 30,
                "do_not_dispense_days": 7,
            },
            frozenset({Role.ADMIN}),
        ),
        "register_location": (
            "/locations",
            {"gln": with_check_digit("400000000099"), "kind": "depot", "name": "Depot 2", "country": "DE"},
            frozenset({Role.ADMIN}),
        ),
        "activate_site": (f"/sites/{p.pending_site}/activation", {}, frozenset({Role.ADMIN})),
        "receive_lot": (
            "/lots",
            {
                "gtin": with_check_digit("0400000000990"),
                "lot_number": "EXC-9",
                "kind": "excipient",
                "material": "lactose",
                "quantity": {"amount": "5", "unit": "kg"},
                "location_id": str(p.plant),
                "manufactured_on": (today() - timedelta(days=30)).isoformat(),
                "expires_on": soon,
                "supplier": "ExCo",
            },
            frozenset({Role.MANUFACTURING, Role.DEPOT}),
        ),
        "release_lot": (
            f"/lots/{p.api}/release",
            {"signature": signature("released"), "results_ref": "COA-9"},
            frozenset({Role.QA}),
        ),
        "reject_lot": (
            f"/lots/{p.api}/rejection",
            {"signature": signature("rejected"), "reason": "out of specification"},
            frozenset({Role.QA}),
        ),
        "hold_lot": (f"/lots/{p.api}/hold", {"reason": "investigation"}, frozenset({Role.QA})),
        "recall_lot": (
            f"/lots/{p.api}/recall",
            {"signature": signature("approved"), "reason": "impurity"},
            frozenset({Role.QA}),
        ),
        "correct_lot_quantity": (
            f"/lots/{p.api}/quantity-corrections",
            {"corrects_version": 1, "quantity": {"amount": "2.5", "unit": "kg"}, "reason": "mis-keyed"},
            frozenset({Role.QA}),
        ),
        "transfer_lot": (
            f"/lots/{p.excipient}/transfers",
            {"transfer_number": "TR-9", "from_id": str(p.plant), "to_id": str(p.depot)},
            frozenset({Role.MANUFACTURING, Role.DEPOT}),
        ),
        "receive_lot_transfer": (
            f"/lots/{p.dp}/transfers/receipt",
            {"location_id": str(p.depot)},
            frozenset({Role.MANUFACTURING, Role.DEPOT}),
        ),
        "formulate": (
            "/batches",
            {
                "batch_number": "B-9",
                "product": "Lotlinib 10 mg",
                "location_id": str(p.plant),
                "inputs": [{"lot_id": str(p.api), "quantity": {"amount": "10", "unit": "g"}}],
                "output": {"gtin": DP_GTIN, "lot_number": "DP-9", "material": "tablets", "expires_on": soon},
                "theoretical_yield": {"amount": "100", "unit": "unit"},
                "actual_yield": {"amount": "99", "unit": "unit"},
                "checked_by": checker,
            },
            frozenset({Role.MANUFACTURING}),
        ),
        "record_deviation": (
            f"/batches/{p.batch}/deviations",
            {"number": "DEV-1", "description": "mixer stopped", "classification": "minor"},
            frozenset({Role.MANUFACTURING, Role.QA}),
        ),
        "package": (
            "/packaging-runs",
            {
                "batch_number": "P-9",
                "trial_id": str(p.trial),
                "location_id": str(p.depot),
                "kit_gtin": KIT_GTIN,
                "label_version": "v1",
                "arms": [{"treatment": "A", "dp_lot_id": str(p.dp), "units_per_kit": 10, "units_issued": 10}],
                "kit_list": [{"kit_number": "K90001", "treatment": "A"}],
                "checked_by": checker,
            },
            frozenset({Role.MANUFACTURING}),
        ),
        "dispose_packaging": (
            f"/packaging-runs/{p.run}/disposition",
            {"released": True, "signature": signature("released")},
            frozenset({Role.QA}),
        ),
        "certify_packaging": (
            f"/packaging-runs/{p.run}/certification",
            {"signature": signature("certified")},
            frozenset({Role.QP}),
        ),
        "sponsor_release": (
            f"/packaging-runs/{p.run}/sponsor-releases",
            {"country": "FR", "signature": signature("sponsor_released")},
            frozenset({Role.QA}),
        ),
        "extend_expiry": (
            f"/packaging-runs/{p.run}/expiry-extensions",
            {"new_expiry": soon, "signature": signature("relabelled"), "reason": "stability data"},
            frozenset({Role.QA}),
        ),
        "ship": (
            "/shipments",
            {
                "shipment_number": "S-9",
                "sscc": sscc(9),
                "from_id": str(p.depot),
                "to_id": str(p.site),
                "kit_ids": [kit],
                "min_celsius": "2",
                "max_celsius": "8",
            },
            frozenset({Role.DEPOT}),
        ),
        "decide_quarantine": (
            "/kits/quarantine-decisions",
            {"kit_ids": [kit], "release": True, "signature": signature("released"), "reason": "ok"},
            frozenset({Role.QA}),
        ),
        "authorise_destruction": (
            "/kits/destruction-authorisations",
            {"kit_ids": [kit], "signature": signature("authorised_destruction"), "reason": "expired"},
            frozenset({Role.QA}),
        ),
        "report_excursion": (
            f"/locations/{p.depot}/excursions",
            {"kit_ids": [kit], "min_celsius": "1", "max_celsius": "12", "duration_minutes": 30},
            frozenset({Role.SITE, Role.DEPOT}),
        ),
        "destroy": (
            f"/locations/{p.depot}/destructions",
            {"kit_ids": [kit], "certificate": "CERT-1", "method": "incineration"},
            frozenset({Role.SITE, Role.DEPOT}),
        ),
        "dispense": (f"/sites/{p.site}/kits/{kit}/dispensing", {"subject": "SUBJ-1"}, frozenset({Role.SITE})),
        "return_kit": (f"/sites/{p.site}/kits/{kit}/return", {"condition": "unused"}, frozenset({Role.SITE})),
        "confirm_receipt": (
            f"/sites/{p.site}/shipments/{Shipment.create_id('S-1')}/receipt",
            {"outcomes": {"K00001": "received"}},
            frozenset({Role.SITE}),
        ),
    }
