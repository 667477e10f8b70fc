"""Aggregates of the clinical supply chain; each module owns one aggregate and its rules."""

from ledger.domain.batch import ManufacturingBatch
from ledger.domain.kit import Kit, KitStatus
from ledger.domain.location import Location, LocationKind, SiteStatus
from ledger.domain.lot import Lot, LotKind, LotStatus
from ledger.domain.packaging import PackagingRun
from ledger.domain.shipment import Shipment, ShipmentStatus
from ledger.domain.trial import Trial

__all__ = [
    "Kit",
    "KitStatus",
    "Location",
    "LocationKind",
    "Lot",
    "LotKind",
    "LotStatus",
    "ManufacturingBatch",
    "PackagingRun",
    "Shipment",
    "ShipmentStatus",
    "SiteStatus",
    "Trial",
]
