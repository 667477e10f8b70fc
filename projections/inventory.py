"""Inventory: what remains of each lot where it is, kits per place and status, kits expiring soon.

A lot is where it was received or produced until a transfer moves the whole of what remains to
another place: in transit it stays listed at the place it left, with the place it travels to, and
its receipt moves it there. Stock per lot is its remaining quantity at its place: received, less
what formulation and packaging consumed, restated by any quantity correction. Amounts are exact
decimals kept as text.

Kits are counted from the genealogy's tables (its per-run place counts and its kit rows), so these
answers are as fresh as the lower of the two positions. A second copy of 200,000 kit rows, updated
on every kit event, cost about a fifth of a full rebuild for no question the genealogy's rows cannot
answer; the kit rows carry no treatment, so nothing here can unblind.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import Column, Connection, Date, Index, MetaData, String, Table, Uuid, func, select

from ledger.domain import Location, Lot
from ledger.domain.kit import IN_SUPPLY
from ledger.domain.lot import status_on_arrival
from ledger.errors import InvalidInput, LocationNotFound
from projections import genealogy as gen
from projections.base import (
    BatchWriter,
    Projection,
    ProjectionError,
    StagedRows,
    location_row,
    location_table,
    on,
)
from projections.db import reading
from projections.views import (
    ACCOUNTABILITY_OUTCOMES,
    Accountability,
    AccountedKit,
    LocationRef,
    LotRef,
    PlaceKits,
    group_by_place,
)

metadata = MetaData()

location = location_table("inv_location", metadata)

lot = Table(
    "inv_lot", metadata,
    Column("lot_id", Uuid, primary_key=True),
    Column("gtin", String(14), nullable=False),
    Column("lot_number", String(40), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("material", String(200), nullable=False),
    Column("status", String(32), nullable=False),
    Column("location_id", Uuid, nullable=False),
    Column("received", String(40), nullable=False),
    Column("remaining", String(40), nullable=False),
    Column("unit", String(8), nullable=False),
    Column("expires_on", Date, nullable=False),
    Column("retest_on", Date),
    Column("in_transit_to", Uuid),
    Index("inv_lot_location", "location_id"),
)

_LOT_STATUS = {
    Lot.Released: "released",
    Lot.Rejected: "rejected",
    Lot.PutOnHold: "on_hold",
    Lot.Recalled: "recalled",
}


class _Writer(BatchWriter):
    def __init__(self, conn: Connection) -> None:
        super().__init__(conn)
        self.lots = StagedRows(conn, lot)

    def flush(self) -> None:
        self.lots.flush()

    def _lot(self, lot_id: UUID) -> dict[str, Any]:
        row = self.lots.get(lot_id)
        if row is None:
            raise ProjectionError(f"lot {lot_id} changed before it was received")
        self.lots.changed(lot_id)
        return row

    @on(Location.Registered)
    def location_registered(self, position: int, e: Any) -> None:
        self.conn.execute(location.insert().values(location_row(e)))

    @on(Lot.Received)
    def lot_received(self, position: int, e: Any) -> None:
        self.lots.put({
            "lot_id": e.originator_id, "gtin": e.gtin, "lot_number": e.lot_number, "kind": str(e.kind),
            "material": e.material, "status": "quarantine", "location_id": e.location_id,
            "received": e.quantity["amount"], "remaining": e.quantity["amount"],
            "unit": e.quantity["unit"], "expires_on": e.expires_on, "retest_on": e.retest_on,
            "in_transit_to": None,
        })

    @on(*_LOT_STATUS)
    def lot_status_changed(self, position: int, e: Any) -> None:
        self._lot(e.originator_id)["status"] = _LOT_STATUS[type(e)]

    @on(Lot.Consumed)
    def lot_consumed(self, position: int, e: Any) -> None:
        row = self._lot(e.originator_id)
        row["remaining"] = str(Decimal(row["remaining"]) - Decimal(e.quantity["amount"]))

    @on(Lot.TransferShipped)
    def lot_transfer_shipped(self, position: int, e: Any) -> None:
        self._lot(e.originator_id)["in_transit_to"] = e.to_id

    @on(Lot.TransferReceived)
    def lot_transfer_received(self, position: int, e: Any) -> None:
        row = self._lot(e.originator_id)
        row.update(location_id=e.location_id, in_transit_to=None,
                   status=status_on_arrival(row["status"], e.intact))

    @on(Lot.QuantityCorrected)
    def lot_quantity_corrected(self, position: int, e: Any) -> None:
        row = self._lot(e.originator_id)
        used = Decimal(row["received"]) - Decimal(row["remaining"])
        new = Decimal(e.quantity["amount"])
        row.update(received=str(new), remaining=str(new - used), unit=e.quantity["unit"])


# --- answers -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LotStock:
    """One lot at its location: received, remaining (same unit), and dates that limit its use; in
    transit, the place it travels to."""

    lot: LotRef
    location: LocationRef
    received: Decimal
    remaining: Decimal
    unit: str
    retest_on: date | None
    in_transit_to: LocationRef | None


@dataclass(frozen=True, slots=True)
class Stock:
    lots: tuple[LotStock, ...]
    as_of: int


@dataclass(frozen=True, slots=True)
class KitStock:
    """Kits per place, by status and recall class."""

    places: tuple[PlaceKits, ...]
    total: int
    as_of: int


@dataclass(frozen=True, slots=True)
class ExpiringKit:
    kit_id: UUID
    kit_number: str
    batch_number: str
    expires_on: date
    days_left: int
    status: str
    place: LocationRef


@dataclass(frozen=True, slots=True)
class Expiring:
    """Kits still in the supply chain that expire on or before `until`, soonest first."""

    until: date
    kits: tuple[ExpiringKit, ...]
    as_of: int


class Inventory(Projection):
    """Stock of lots and kits, and what is about to expire."""

    name = "inventory"
    schema = 2  # 2: inv_lot.in_transit_to
    metadata = metadata
    writer = _Writer

    def stock(self, *, location_id: UUID | None = None, kind: str | None = None,
              lot_id: UUID | None = None, include_empty: bool = False) -> Stock:
        """Remaining quantity of each lot at its location; optionally one location, kind or lot."""
        to = location.alias("inv_to")
        query = select(
            lot, *(c.label("at_" + c.name) for c in location.c), *(c.label("to_" + c.name) for c in to.c)
        ).join(location, location.c.location_id == lot.c.location_id).outerjoin(
            to, to.c.location_id == lot.c.in_transit_to)
        if location_id is not None:
            query = query.where(lot.c.location_id == location_id)
        if kind is not None:
            query = query.where(lot.c.kind == kind)
        if lot_id is not None:
            query = query.where(lot.c.lot_id == lot_id)
        with reading(self.engine) as conn:
            as_of = self.as_of(conn)
            rows = conn.execute(query.order_by(location.c.name, lot.c.lot_number)).mappings().all()
        found = tuple(_stock(r) for r in rows)
        return Stock(tuple(s for s in found if include_empty or s.remaining > 0), as_of)

    @property
    def depends_on(self) -> tuple[str, ...]:
        return (gen.Genealogy.name,)

    def kits_by_place(self, *, trial_id: UUID | None = None) -> KitStock:
        """Kits per place (where they are, or the site they travel to), by status and class."""
        counts = gen.run_place
        counted = select(counts.c.place_id, counts.c.status, counts.c.status_class, func.sum(counts.c.n))
        if trial_id is not None:
            counted = counted.join(gen.run, gen.run.c.run_id == counts.c.run_id).where(
                gen.run.c.trial_id == trial_id)
        with reading(self.engine) as conn:
            as_of = self.as_of(conn)
            rows = conn.execute(
                counted.group_by(counts.c.place_id, counts.c.status, counts.c.status_class)
            ).all()
            places = group_by_place(rows, gen.places_by_id(conn, {r[0] for r in rows}))
        return KitStock(places, sum(p.total for p in places), as_of)

    def accountability(self, site_id: UUID) -> Accountability:
        """Every kit shipped to the site and what became of it, by kit number; the counts add up."""
        kit, shipment, shipped = gen.kit, gen.shipment, gen.shipment_kit
        query = (
            select(kit.c.kit_id, kit.c.kit_number, kit.c.status, kit.c.place_id, kit.c.subject,
                   shipment.c.shipment_number, shipment.c.shipped_at, shipment.c.received_at)
            .join(shipped, shipped.c.kit_id == kit.c.kit_id)
            .join(shipment, shipment.c.shipment_id == shipped.c.shipment_id)
            .where(shipment.c.to_id == site_id)
            .order_by(kit.c.kit_number)
        )
        with reading(self.engine) as conn:
            as_of = self.as_of(conn)
            rows = conn.execute(query).mappings().all()
            places = gen.places_by_id(conn, {site_id} | {r["place_id"] for r in rows})
        if site_id not in places:
            raise LocationNotFound(site_id)
        kits = tuple(
            AccountedKit(
                r["kit_id"], r["kit_number"], r["shipment_number"], r["shipped_at"], r["received_at"],
                r["status"], accounted_outcome(r["status"], r["place_id"], site_id), r["subject"],
                places.get(r["place_id"]),
            )
            for r in rows
        )
        counts = dict.fromkeys(ACCOUNTABILITY_OUTCOMES, 0)
        for k in kits:
            counts[k.outcome] += 1
        received = len(kits) - counts["in_transit"] - counts["missing"]
        return Accountability(places[site_id], len(kits), received, counts, kits, as_of)

    def expiring_kits(self, within_days: int, *, today: date | None = None,
                      trial_id: UUID | None = None) -> Expiring:
        """Kits still in the supply chain (available, in transit, received, quarantined) expiring soon."""
        if within_days < 0:
            raise InvalidInput("within_days must not be negative", field="within_days")
        today = today or datetime.now(UTC).date()
        until = today + timedelta(days=within_days)
        kit = gen.kit
        query = (
            select(kit, *(c.label("at_" + c.name) for c in gen.location.c))
            .join(gen.location, gen.location.c.location_id == kit.c.place_id)
            .where(kit.c.expires_on <= until, kit.c.status.in_([str(s) for s in IN_SUPPLY]))
            .order_by(kit.c.expires_on, kit.c.kit_number)
        )
        if trial_id is not None:
            query = query.where(kit.c.trial_id == trial_id)
        with reading(self.engine) as conn:
            as_of = self.as_of(conn)
            rows = conn.execute(query).mappings().all()
        return Expiring(until, tuple(
            ExpiringKit(r["kit_id"], r["kit_number"], r["batch_number"], r["expires_on"],
                        (r["expires_on"] - today).days, r["status"], _place(r))
            for r in rows
        ), as_of)


_ON_SITE = {
    "missing": "missing",
    "in_transit": "in_transit",
    "dispensed": "dispensed",
    "destroyed": "destroyed",
    "damaged": "damaged",
    "returned": "returned_by_subject",
}
"""A kit still accountable to the site: its status says what became of it (else it is on hand)."""


def accounted_outcome(status: str, place_id: UUID, site_id: UUID) -> str:
    """What became of a kit delivered to `site_id`, from its status and the place accountable for it
    now: one that left the site was sent back; one still the site's, by its status."""
    if place_id != site_id:
        return "sent_back"
    return _ON_SITE.get(status, "on_hand")


def _place(row: Any, prefix: str = "at_") -> LocationRef:
    return LocationRef.of({k[3:]: v for k, v in row.items() if k.startswith(prefix)})


def _stock(r: Any) -> LotStock:
    to = _place(r, "to_") if r["in_transit_to"] is not None else None
    return LotStock(LotRef.of(r), _place(r), Decimal(r["received"]), Decimal(r["remaining"]), r["unit"],
                    r["retest_on"], to)
