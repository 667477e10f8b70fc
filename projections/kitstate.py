"""Where a kit is and what state it is in, from its events: the kit row reducer and status classes.

A kit row (a dict) carries `status`, `held_status` (the status a quarantine will restore),
`location_id` (where it physically is, None in transit, missing or destroyed), `place_id` (the place
accountable for it: where it is, the site it is travelling to or went missing on the way to, or
where it was destroyed), `shipment_id` (its latest shipment), `subject` and `expires_on`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ledger.domain import Kit, KitStatus, LocationKind

Row = dict[str, Any]

# Status classes a recall investigator counts by; `missing` is kept apart, never hidden in transit.
AT_DEPOT = "at_depot"
IN_TRANSIT = "in_transit"
AT_SITE = "at_site"
DISPENSED = "dispensed"
RETURNED = "returned"
DESTROYED = "destroyed"
MISSING = "missing"
STATUS_CLASSES = (AT_DEPOT, IN_TRANSIT, AT_SITE, DISPENSED, RETURNED, DESTROYED, MISSING)

# Kits still in the supply chain: they could still reach a subject.
IN_SUPPLY = (KitStatus.AVAILABLE, KitStatus.IN_TRANSIT, KitStatus.RECEIVED, KitStatus.QUARANTINED)


def commissioned(event: Any) -> Row:
    """The row of a newly packaged kit, at the packaging location."""
    return {
        "kit_id": event.originator_id,
        "gtin": event.gtin,
        "kit_number": event.kit_number,
        "trial_id": event.trial_id,
        "run_id": event.packaging_run_id,
        "batch_number": event.batch_number,
        "expires_on": event.expires_on,
        "status": str(KitStatus.AVAILABLE),
        "held_status": None,
        "location_id": event.location_id,
        "place_id": event.location_id,
        "shipment_id": None,
        "subject": None,
    }


def _shipped(row: Row, e: Any) -> None:
    row.update(status=KitStatus.IN_TRANSIT, location_id=None, place_id=e.to_id, shipment_id=e.shipment_id)


def _received(row: Row, e: Any) -> None:
    row["place_id"] = e.site_id
    if e.outcome == "missing":
        row.update(status=KitStatus.MISSING, location_id=None)
        return
    row["location_id"] = e.site_id
    if e.outcome == "damaged":
        row["status"] = KitStatus.DAMAGED
    elif e.quarantine:
        row.update(status=KitStatus.QUARANTINED, held_status=KitStatus.RECEIVED)
    else:
        row["status"] = KitStatus.RECEIVED


def _quarantined(row: Row, e: Any) -> None:
    row.update(held_status=row["status"], status=KitStatus.QUARANTINED)


def _quarantine_released(row: Row, e: Any) -> None:
    row.update(status=row["held_status"] or KitStatus.AVAILABLE, held_status=None)


def _quarantine_rejected(row: Row, e: Any) -> None:
    row.update(status=KitStatus.DAMAGED, held_status=None)


def _dispensed(row: Row, e: Any) -> None:
    row.update(status=KitStatus.DISPENSED, subject=e.subject)


def _returned(row: Row, e: Any) -> None:
    row["status"] = KitStatus.RETURNED


def _return_shipped(row: Row, e: Any) -> None:
    """Sent back by a site (a recall): in transit, the depot it travels to accountable for it."""
    row.update(status=KitStatus.IN_TRANSIT, held_status=None, location_id=None, place_id=e.depot_id)


def _return_received(row: Row, e: Any) -> None:
    row.update(status=KitStatus.RETURNED, location_id=e.depot_id, place_id=e.depot_id)


def _destruction_authorised(row: Row, e: Any) -> None:
    row["status"] = KitStatus.PENDING_DESTRUCTION


def _destroyed(row: Row, e: Any) -> None:
    row.update(status=KitStatus.DESTROYED, location_id=None)


def _relabelled(row: Row, e: Any) -> None:
    row["expires_on"] = e.new_expiry


_STEPS: dict[type, Callable[[Row, Any], None]] = {
    Kit.Shipped: _shipped,
    Kit.Received: _received,
    Kit.Quarantined: _quarantined,
    Kit.QuarantineReleased: _quarantine_released,
    Kit.QuarantineRejected: _quarantine_rejected,
    Kit.Dispensed: _dispensed,
    Kit.Returned: _returned,
    Kit.RecallQuarantined: _quarantined,
    Kit.ReturnShipped: _return_shipped,
    Kit.ReturnReceived: _return_received,
    Kit.DestructionAuthorised: _destruction_authorised,
    Kit.Destroyed: _destroyed,
    Kit.Relabelled: _relabelled,
}

CHANGES = tuple(_STEPS)
"""The kit events after commissioning that change a kit row."""


def step(row: Row, event: Any) -> None:
    """Apply one post-commissioning kit event to `row`, in place; statuses are stored as text."""
    _STEPS[type(event)](row, event)
    for key in ("status", "held_status"):
        if row[key] is not None:
            row[key] = str(row[key])


def status_class(status: str, place_kind: str | None) -> str:
    """The recall class of a kit: at depot, in transit, at site, dispensed, returned, destroyed, missing."""
    if status == KitStatus.IN_TRANSIT:
        return IN_TRANSIT
    if status == KitStatus.MISSING:
        return MISSING
    if status == KitStatus.DISPENSED:
        return DISPENSED
    if status == KitStatus.RETURNED:
        return RETURNED
    if status == KitStatus.DESTROYED:
        return DESTROYED
    return AT_SITE if place_kind == LocationKind.CLINICAL_SITE else AT_DEPOT
