"""What the API reads from the write model itself: a site's view of an inbound shipment. The read
models have no query for a shipment's kit list yet (see docs/api.md)."""

from __future__ import annotations

from uuid import UUID

from api.schemas.queries import ShipmentOut
from ledger.application import Ledger
from ledger.domain import Shipment
from ledger.errors import ShipmentNotFound


def shipment_to(ledger: Ledger, shipment_id: UUID, site_id: UUID) -> ShipmentOut:
    """The shipment if it is addressed to `site_id`; not found otherwise (its existence is not told)."""
    shipment = ledger.get(Shipment, shipment_id)
    if shipment.to_id != site_id:
        raise ShipmentNotFound(shipment_id)
    return ShipmentOut.model_validate(shipment)
