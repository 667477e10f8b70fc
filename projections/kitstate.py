"""Where a kit is and what state it is in, from its events: the kit row reducer and status classes.

A kit row (a dict) carries `status`, `held_status` (the status a quarantine will restore),
`location_id` (where it physically is, None in transit, missing or destroyed), `place_id` (the place
accountable for it: where it is, the site it is travelling to or went missing on the way to, or
where it was destroyed), `shipment_id` (its latest shipment), `subject` and `expires_on`.
"""

from __future__ import annotations

from typing import Any

from ledger.domain import Kit, KitStatus, LocationKind
from ledger.domain.kit import MOVES

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



def commissioned(event: Any) -> Row:
    """The row of a newly packaged kit, at the packaging location."""
    row: Row = {
        "kit_id": event.originator_id,
        "gtin": event.gtin,
        "kit_number": event.kit_number,
        "trial_id": event.trial_id,
        "run_id": event.packaging_run_id,
        "batch_number": event.batch_number,
        "expires_on": event.expires_on,
    }
    step(row, event)
    return row


class _Row:
    """A kit row seen as the attributes the domain's state machine reads and changes."""

    __slots__ = ("_row",)

    def __init__(self, row: Row) -> None:
        object.__setattr__(self, "_row", row)

    def __getattr__(self, name: str) -> Any:
        return self._row[name]

    def __setattr__(self, name: str, value: Any) -> None:
        self._row[name] = value


CHANGES = tuple(e for e in MOVES if e is not Kit.Commissioned)
"""The kit events after commissioning that change a kit row."""


def step(row: Row, event: Any) -> None:
    """Apply one kit event to `row`, in place, by the domain's own state machine (`ledger.domain.kit`);
    statuses are stored as text."""
    MOVES[type(event)](_Row(row), **vars(event))
    for key in ("status", "held_status"):
        if row.get(key) is not None:
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
