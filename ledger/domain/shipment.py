"""Shipments of kits from a depot to an activated site, and the site's receipt of each kit."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.base import LedgerAggregate, stable_id
from ledger.errors import ShipmentNotOpen


class ShipmentStatus(StrEnum):
    IN_TRANSIT = "in_transit"
    RECEIVED = "received"


class Shipment(LedgerAggregate):
    """A shipper (SSCC) with its kits, shipping conditions and temperature logger."""

    @staticmethod
    def create_id(shipment_number: str, **_: Any) -> UUID:
        return stable_id("shipment", shipment_number)

    class Shipped(LedgerAggregate.Created):
        """The shipper left the depot for the site with its kits, shipping conditions and logger."""

        shipment_number: str
        audit: dict[str, Any]
        sscc: str
        from_id: UUID
        to_id: UUID
        kit_ids: list[UUID]
        kit_numbers: list[str]
        min_celsius: Decimal
        max_celsius: Decimal
        logger_id: str | None
        carrier: str | None

    @event(Shipped)
    def __init__(
        self,
        shipment_number: str,
        audit: dict[str, Any],
        sscc: str,
        from_id: UUID,
        to_id: UUID,
        kit_ids: list[UUID],
        kit_numbers: list[str],
        min_celsius: Decimal,
        max_celsius: Decimal,
        logger_id: str | None,
        carrier: str | None,
    ) -> None:
        self.shipment_number = shipment_number
        self.sscc = sscc
        self.from_id = from_id
        self.to_id = to_id
        self.kit_ids = list(kit_ids)
        self.kit_numbers = list(kit_numbers)
        self.min_celsius = min_celsius
        self.max_celsius = max_celsius
        self.logger_id = logger_id
        self.status = ShipmentStatus.IN_TRANSIT
        self.receipt: dict[str, Any] | None = None
        self.site_signature: dict[str, str] | None = None
        self._touch(audit)

    def is_excursion(self, logger_min: Decimal | None, logger_max: Decimal | None) -> bool:
        """True when the logger saw a temperature outside the shipping conditions."""
        return (logger_min is not None and logger_min < self.min_celsius) or (
            logger_max is not None and logger_max > self.max_celsius
        )

    class ReceiptConfirmed(Aggregate.Event):
        """The site's receipt. Version 2 added `site_signature` (the site's own signature, or None);
        version 3 `remarks`: what the site says of each damaged or missing kit, by kit number."""

        class_version = 3

        audit: dict[str, Any]
        outcomes: dict[str, str]
        logger_min: Decimal | None
        logger_max: Decimal | None
        excursion: bool
        site_signature: dict[str, str] | None
        remarks: dict[str, str]

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            """Receipts recorded before remarks existed carry none."""
            state["remarks"] = {}

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Receipts recorded before site signatures existed carry none."""
            state["site_signature"] = None

    def confirm_receipt(
        self,
        audit: dict[str, Any],
        outcomes: dict[str, str],
        logger_min: Decimal | None,
        logger_max: Decimal | None,
        excursion: bool,
        site_signature: dict[str, str] | None = None,
        remarks: dict[str, str] | None = None,
    ) -> None:
        """Close the shipment with the site's receipt (only while it is in transit)."""
        self.require_in_transit()
        self._require_after_last_step(audit, "receipt")
        self._receipt_confirmed(
            audit, outcomes, logger_min, logger_max, excursion, site_signature, dict(remarks or {})
        )

    def require_in_transit(self) -> None:
        """A shipment is received once: a second receipt (or a replayed one) is refused."""
        if self.status != ShipmentStatus.IN_TRANSIT:
            raise ShipmentNotOpen(self.id, self.shipment_number, str(self.status))

    @event(ReceiptConfirmed)
    def _receipt_confirmed(
        self,
        audit: dict[str, Any],
        outcomes: dict[str, str],
        logger_min: Decimal | None,
        logger_max: Decimal | None,
        excursion: bool,
        site_signature: dict[str, str] | None,
        remarks: dict[str, str],
    ) -> None:
        self.status = ShipmentStatus.RECEIVED
        self.site_signature = site_signature
        self.receipt = {
            "received_at": audit["occurred_at"],
            "received_by": audit["name"],
            "outcomes": dict(outcomes),
            "logger_min": logger_min,
            "logger_max": logger_max,
            "excursion": excursion,
            "remarks": dict(remarks),
        }
        self._touch(audit)
