"""What the API reads from the write model itself: a site's view of an inbound shipment and where
kits are. The read models have no query for a shipment's kit list yet (see docs/api.md)."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from api.schemas.queries import ShipmentOut
from ledger.application import Ledger
from ledger.domain import Kit, Shipment
from ledger.errors import KitsNotUsable, ShipmentNotFound


def shipment_to(ledger: Ledger, shipment_id: UUID, site_id: UUID) -> ShipmentOut:
    """The shipment if it is addressed to `site_id`; not found otherwise (its existence is not told)."""
    shipment = ledger.get(Shipment, shipment_id)
    if shipment.to_id != site_id:
        raise ShipmentNotFound(shipment_id)
    return ShipmentOut(
        id=shipment.id,
        shipment_number=shipment.shipment_number,
        sscc=shipment.sscc,
        from_id=shipment.from_id,
        to_id=shipment.to_id,
        status=str(shipment.status),
        kit_numbers=list(shipment.kit_numbers),
        kit_ids=list(shipment.kit_ids),
        min_celsius=shipment.min_celsius,
        max_celsius=shipment.max_celsius,
        logger_id=shipment.logger_id,
    )


def kits_at(ledger: Ledger, location_id: UUID, kit_ids: Sequence[UUID], action: str) -> None:
    """Refuse (naming each kit) unless every kit is held at `location_id`."""
    problems = []
    for kit_id in kit_ids:
        kit = ledger.get(Kit, kit_id)
        if kit.location_id != location_id:
            problems.append(
                {
                    "kit_id": str(kit.id),
                    "kit_number": kit.kit_number,
                    "code": "wrong_location",
                    "reason": "not held at this location",
                }
            )
    if problems:
        raise KitsNotUsable(f"{action} at this location", problems)
