"""Answers of the queries: the read models' plain answers, each with its freshness.

Fields mirror `projections/*` dataclasses (read with `from_attributes`). Blinded answers leave
`treatment` and `dp_lot_id` of each kit null.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from api.schemas.common import Freshness, Page


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class LotRefOut(Out):
    id: UUID
    gtin: str
    lot_number: str
    kind: str
    material: str
    status: str
    expires_on: date


class LocationRefOut(Out):
    id: UUID
    gln: str
    name: str
    kind: str
    country: str
    site_number: str | None


class PlaceKitsOut(Out):
    """Kits one place holds (or travel to it), by status and by recall class."""

    place: LocationRefOut
    total: int
    by_status: dict[str, int]
    by_class: dict[str, int]


class ConsumedOut(Out):
    lot: LotRefOut
    amount: Decimal
    unit: str


class StepOut(Out):
    """A formulation or packaging step of a backward trace, `depth` steps from the start."""

    kind: str
    id: UUID
    batch_number: str
    location_id: UUID
    occurred_at: datetime
    output_lot: LotRefOut | None
    inputs: list[ConsumedOut]
    depth: int


class KitOut(Out):
    """A kit where it is now; `treatment` and `dp_lot_id` only in unblinded answers."""

    id: UUID
    kit_number: str
    gtin: str
    run_id: UUID
    batch_number: str
    expires_on: date
    status: str
    status_class: str
    location_id: UUID | None
    place: LocationRefOut | None
    shipment_id: UUID | None
    subject: str | None
    treatment: str | None = None
    dp_lot_id: UUID | None = None


class BackwardOut(Out):
    """A kit or lot back to every lot that went into it."""

    kit: KitOut | None
    lot: LotRefOut | None
    steps: list[StepOut]
    input_lots: list[LotRefOut]
    blinded: bool
    freshness: Freshness


class BatchRefOut(Out):
    id: UUID
    batch_number: str
    product: str
    output_lot: LotRefOut
    amount: Decimal
    unit: str
    occurred_at: datetime


class RunRefOut(Out):
    id: UUID
    batch_number: str
    kit_count: int
    expires_on: date
    via_lot_ids: list[UUID]


class ShipmentRefOut(Out):
    id: UUID
    shipment_number: str
    sscc: str
    from_id: UUID
    to: LocationRefOut
    status: str
    shipped_at: datetime
    received_at: datetime | None
    kits: int


class ForwardOut(Out):
    """Everything a lot reached, counted; the kits themselves are paged at `.../forward/kits`."""

    lot: LotRefOut
    batches: list[BatchRefOut]
    dp_lots: list[LotRefOut]
    runs: list[RunRefOut]
    places: list[PlaceKitsOut]
    total_kits: int
    shipments: list[ShipmentRefOut]
    subjects: int
    blinded: bool
    freshness: Freshness


class KitPage(Page[KitOut]):
    """Reached kits, by kit number, a page at a time."""

    blinded: bool
    freshness: Freshness


class RecallNoticeOut(Out):
    lot: LotRefOut
    reason: str
    principal: str
    name: str
    occurred_at: datetime
    position: int


class RecallNoticesOut(Out):
    notices: list[RecallNoticeOut]
    freshness: Freshness


class SiteNoticeOut(Out):
    site: LocationRefOut
    kits: int
    by_class: dict[str, int]


class ImpactOut(Out):
    """A recall's reach: drug-product lots, runs, kits per place and class, open shipments, sites to tell."""

    lots: list[LotRefOut]
    dp_lots: list[LotRefOut]
    runs: list[RunRefOut]
    places: list[PlaceKitsOut]
    by_class: dict[str, int]
    total_kits: int
    open_shipments: list[ShipmentRefOut]
    sites_to_notify: list[SiteNoticeOut]
    blinded: bool
    freshness: Freshness


class LotStockOut(Out):
    lot: LotRefOut
    location: LocationRefOut
    received: Decimal
    remaining: Decimal
    unit: str
    retest_on: date | None


class StockOut(Out):
    lots: list[LotStockOut]
    freshness: Freshness


class KitStockOut(Out):
    places: list[PlaceKitsOut]
    total: int
    freshness: Freshness


class ExpiringKitOut(Out):
    kit_id: UUID
    kit_number: str
    batch_number: str
    expires_on: date
    days_left: int
    status: str
    place: LocationRefOut


class ExpiringOut(Out):
    until: date
    kits: Page[ExpiringKitOut]
    freshness: Freshness


class HandOverOut(Out):
    position: int
    action: str
    from_place: LocationRefOut | None
    to_place: LocationRefOut | None
    shipment_id: UUID | None
    subject: str | None
    principal: str
    name: str
    role: str
    occurred_at: datetime
    detail: dict[str, Any]


class CustodyOut(Out):
    holder_id: UUID
    holder_kind: str
    steps: list[HandOverOut]
    freshness: Freshness


class AuditEntryOut(Out):
    position: int
    version: int
    aggregate: str
    event: str
    principal: str
    role: str
    name: str
    occurred_at: datetime
    recorded_at: datetime
    reason: str | None
    changes: dict[str, Any]
    seq: int | None
    chain_hash: str | None


class TrailOut(Out):
    aggregate_id: UUID
    aggregate: str
    entries: Page[AuditEntryOut]
    freshness: Freshness


class ShipmentOut(Out):
    """A shipment as its destination sees it: what to check off on receipt."""

    id: UUID
    shipment_number: str
    sscc: str
    from_id: UUID
    to_id: UUID
    status: str
    kit_numbers: list[str]
    kit_ids: list[UUID]
    min_celsius: Decimal
    max_celsius: Decimal
    logger_id: str | None


class IdOut(BaseModel):
    """The id Lotline gives an aggregate with this business key (ids are derived, not assigned)."""

    kind: str
    id: UUID
