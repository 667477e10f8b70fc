"""What the API and the console read from the write model itself: a site's view of an inbound shipment
(the read models have no query for a shipment's kit list yet, see docs/api.md), and the recalls that
concern a place."""

from __future__ import annotations

from uuid import UUID

from api.readside import ReadSide
from api.schemas.queries import ShipmentOut
from api.schemas.recalls import SiteRecall, SiteRecallsOut
from ledger.application import Ledger
from ledger.domain import Shipment
from ledger.errors import ShipmentNotFound
from projections import recall_campaigns as campaigns
from projections.audit import AuditQuery


def shipment_to(ledger: Ledger, shipment_id: UUID, site_id: UUID) -> ShipmentOut:
    """The shipment if it is addressed to `site_id`; not found otherwise (its existence is not told)."""
    shipment = ledger.get(Shipment, shipment_id)
    if shipment.to_id != site_id:
        raise ShipmentNotFound(shipment_id)
    return ShipmentOut.model_validate(shipment)


def recalls_at(ledger: Ledger, read: ReadSide, site_id: UUID) -> SiteRecallsOut:
    """The recalls (and mock recalls) that concern a place, newest first, with what it has left to do
    (blinded: counts only)."""
    opened = read.runner.audit.search(AuditQuery(event="Recall.Opened", place_id=site_id), limit=10_000)
    found = []
    for entry in reversed(opened.entries):
        recall = ledger.recall_view(entry.entity_id)  # type: ignore[arg-type]  # a search sets it
        here = campaigns.place_status(recall, str(site_id))
        found.append(SiteRecall(
            recall_id=recall.id, recall_number=recall.recall_number, status=str(recall.status),
            exercise=recall.exercise, classification=str(recall.classification), reason=recall.reason,
            opened_at=recall.opened_at, acknowledged_at=here.acknowledged_at, kits=here.kits,
            outstanding=here.outstanding,
        ))
    return SiteRecallsOut(site_id=site_id, recalls=found)
