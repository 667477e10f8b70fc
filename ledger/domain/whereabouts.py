"""The kit's state machine: where a kit is and what state it is in, changed by each of its events.

One definition, applied by the `Kit` aggregate to itself and by the read models to their kit rows
(through `ledger.domain.kit.MOVES`). `location_id` is where the kit physically is (None in transit,
missing or destroyed); `place_id` the place accountable for it: where it is, the place it travels to
(or went missing on the way to), or where it was destroyed; `held_status` the status a quarantine
decision restores.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Any, Protocol
from uuid import UUID


class KitStatus(StrEnum):
    AVAILABLE = "available"
    IN_TRANSIT = "in_transit"
    RECEIVED = "received"
    QUARANTINED = "quarantined"
    DAMAGED = "damaged"
    MISSING = "missing"
    DISPENSED = "dispensed"
    RETURNED = "returned"
    PENDING_DESTRUCTION = "pending_destruction"
    DESTROYED = "destroyed"


class ReceiptOutcome(StrEnum):
    RECEIVED = "received"
    DAMAGED = "damaged"
    MISSING = "missing"


class Whereabouts(Protocol):
    """What the state machine reads and changes: a `Kit`, or a read model's kit row seen as attributes."""

    status: str
    held_status: str | None
    location_id: UUID | None
    place_id: UUID | None
    shipment_id: UUID | None
    subject: str | None
    expires_on: date


def commissioned(k: Whereabouts, *, location_id: UUID, **_: Any) -> None:
    k.status, k.held_status, k.shipment_id, k.subject = KitStatus.AVAILABLE, None, None, None
    k.location_id = k.place_id = location_id


def shipped(k: Whereabouts, *, shipment_id: UUID, to_id: UUID, **_: Any) -> None:
    k.status, k.location_id, k.place_id, k.shipment_id = KitStatus.IN_TRANSIT, None, to_id, shipment_id


def received(
    k: Whereabouts, *, site_id: UUID, outcome: str, quarantine: bool, into_stock: bool = False, **_: Any
) -> None:
    """Received where it was shipped: at a site `received`; at a depot (`into_stock`) `available`."""
    k.place_id = site_id
    if outcome == ReceiptOutcome.MISSING:
        k.status, k.location_id = KitStatus.MISSING, None
        return
    k.location_id = site_id
    held = KitStatus.AVAILABLE if into_stock else KitStatus.RECEIVED
    if outcome == ReceiptOutcome.DAMAGED:
        k.status = KitStatus.DAMAGED
    elif quarantine:
        k.status, k.held_status = KitStatus.QUARANTINED, held
    else:
        k.status = held


def quarantined(k: Whereabouts, **_: Any) -> None:
    k.held_status, k.status = k.status, KitStatus.QUARANTINED


def quarantine_released(k: Whereabouts, **_: Any) -> None:
    k.status, k.held_status = k.held_status or KitStatus.AVAILABLE, None


def quarantine_rejected(k: Whereabouts, **_: Any) -> None:
    k.status, k.held_status = KitStatus.DAMAGED, None


def dispensed(k: Whereabouts, *, subject: str, **_: Any) -> None:
    k.status, k.subject = KitStatus.DISPENSED, subject


def returned(k: Whereabouts, **_: Any) -> None:
    k.status = KitStatus.RETURNED


def return_shipped(k: Whereabouts, *, depot_id: UUID, **_: Any) -> None:
    """Sent back by a site: in transit, the depot it travels to accountable for it."""
    k.status, k.held_status, k.location_id, k.place_id = KitStatus.IN_TRANSIT, None, None, depot_id


def return_received(k: Whereabouts, *, depot_id: UUID, **_: Any) -> None:
    k.status, k.location_id, k.place_id = KitStatus.RETURNED, depot_id, depot_id


def destruction_authorised(k: Whereabouts, **_: Any) -> None:
    k.status = KitStatus.PENDING_DESTRUCTION


def destroyed(k: Whereabouts, *, location_id: UUID | None = None, **_: Any) -> None:
    """Destroyed where it was held (`location_id`, recorded since version 2 of the event)."""
    k.status, k.place_id, k.location_id = KitStatus.DESTROYED, location_id or k.location_id, None


def relabelled(k: Whereabouts, *, new_expiry: date, **_: Any) -> None:
    k.expires_on = new_expiry
