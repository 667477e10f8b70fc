"""Chain of custody: every hand-over of a kit or a shipment, in order, with who and when.

A kit's custody runs commissioned (at the packaging site) -> shipped (depot to site, in a
shipment) -> received (at the site: received, damaged or missing) -> dispensed (to a subject) ->
returned (to the site) -> in a recall, sent back (site to depot) -> received back (at the depot) ->
destroyed (with its certificate). A shipment's runs shipped -> receipt
confirmed. Quarantine decisions change a kit's status, not its custodian; they are in the audit trail.

The hand-overs are the entity's own custody events, so they are read from the audit trail's rows
(indexed by entity, with each event's recorded changes) rather than copied: a custody table of its
own repeated a row for nine in ten events of the log, a fifth of a full rebuild, to answer a
question that only ever reads one entity's few events. This read model keeps the place names.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import MetaData, select

from ledger.domain import Location
from ledger.errors import KitNotFound, ShipmentNotFound
from projections import audit
from projections.base import BatchWriter, Projection, location_row, location_table, on
from projections.db import reading, select_in
from projections.views import LocationRef

metadata = MetaData()

location = location_table("custody_location", metadata)


class _Writer(BatchWriter):
    @on(Location.Registered)
    def location_registered(self, position: int, e: Any) -> None:
        self.conn.execute(location.insert().values(location_row(e)))


def _id(value: str | None) -> UUID | None:
    return UUID(value) if value else None


@dataclass(frozen=True, slots=True)
class _Step:
    """How one custody event reads: its action, and where it takes the item from and to."""

    action: str
    from_key: str | None = None
    to_key: str | None = None
    detail: Callable[[dict[str, Any]], dict[str, Any]] = lambda c: {}


def _outcomes(c: dict[str, Any]) -> dict[str, Any]:
    counted: dict[str, int] = {}
    for outcome in c["outcomes"].values():
        counted[outcome] = counted.get(outcome, 0) + 1
    return {"outcomes": dict(sorted(counted.items())), "excursion": c["excursion"],
            "logger_min": c["logger_min"], "logger_max": c["logger_max"]}


# (aggregate, event) -> how it reads as a hand-over.
_STEPS = {
    ("Kit", "Commissioned"): _Step("commissioned", to_key="location_id",
                                   detail=lambda c: {"batch_number": c["batch_number"]}),
    ("Kit", "Shipped"): _Step("shipped", "from_id", "to_id"),
    ("Kit", "Received"): _Step("received", to_key="site_id",
                               detail=lambda c: {"outcome": c["outcome"], "quarantine": c["quarantine"]}),
    ("Kit", "Dispensed"): _Step("dispensed", from_key="site_id"),
    ("Kit", "Returned"): _Step("returned", to_key="site_id", detail=lambda c: {"condition": c["condition"]}),
    ("Kit", "ReturnShipped"): _Step("sent_back", "site_id", "depot_id",
                                    detail=lambda c: {"recall_number": c["recall_number"]}),
    ("Kit", "ReturnReceived"): _Step("received_back", to_key="depot_id"),
    ("Kit", "Destroyed"): _Step("destroyed", from_key="location_id",
                                detail=lambda c: {"certificate": c["certificate"], "method": c["method"]}),
    ("Shipment", "Shipped"): _Step("shipped", "from_id", "to_id", lambda c: {
        "sscc": c["sscc"], "kits": len(c["kit_ids"]), "carrier": c["carrier"], "logger_id": c["logger_id"]}),
    ("Shipment", "ReceiptConfirmed"): _Step("receipt_confirmed", detail=_outcomes),
}


@dataclass(frozen=True, slots=True)
class HandOver:
    """One step of custody: what happened, from where to where, who did it and when."""

    position: int
    action: str
    from_place: LocationRef | None
    to_place: LocationRef | None
    shipment_id: UUID | None
    subject: str | None
    principal: str
    name: str
    role: str
    occurred_at: datetime
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CustodyChain:
    """The custody of one kit or shipment, in ledger order."""

    holder_id: UUID
    holder_kind: str
    steps: tuple[HandOver, ...]
    as_of: int


class Custody(Projection):
    """Hand-overs of kits and shipments, read from their audit trail."""

    name = "custody"
    metadata = metadata
    writer = _Writer

    @property
    def depends_on(self) -> tuple[str, ...]:
        return (audit.AuditTrail.name,)

    def of_kit(self, kit_id: UUID) -> CustodyChain:
        """Every hand-over of a kit, from commissioning on."""
        chain = self._chain(kit_id, "Kit")
        if not chain.steps:
            raise KitNotFound(kit_id)
        return chain

    def of_shipment(self, shipment_id: UUID) -> CustodyChain:
        """A shipment's dispatch and receipt."""
        chain = self._chain(shipment_id, "Shipment")
        if not chain.steps:
            raise ShipmentNotFound(shipment_id)
        return chain

    def _chain(self, holder_id: UUID, aggregate: str) -> CustodyChain:
        events = [name for kind, name in _STEPS if kind == aggregate]
        entry = audit.entry
        with reading(self.engine) as conn:
            as_of = self.as_of(conn)
            rows = conn.execute(
                select(entry).where(entry.c.originator_id == holder_id, entry.c.aggregate == aggregate,
                                    entry.c.event.in_(events))
                .order_by(entry.c.originator_version)
            ).mappings().all()
            changes = [json.loads(r["changes"]) for r in rows]
            steps = [_STEPS[(aggregate, r["event"])] for r in rows]
            ids = {c.get(key) for c, s in zip(changes, steps, strict=True) for key in (s.from_key, s.to_key)
                   if key}
            places = {p["location_id"]: LocationRef.of(p)
                      for p in select_in(conn, location, "location_id", {_id(i) for i in ids} - {None})}
        return CustodyChain(holder_id, aggregate.lower(), tuple(
            HandOver(
                r["position"], step.action,
                places.get(_id(c.get(step.from_key))) if step.from_key else None,
                places.get(_id(c.get(step.to_key))) if step.to_key else None,
                _id(c.get("shipment_id")) or (holder_id if aggregate == "Shipment" else None),
                c.get("subject"), r["principal"], r["name"], r["role"],
                datetime.fromisoformat(r["occurred_at"]), step.detail(c),
            )
            for r, c, step in zip(rows, changes, steps, strict=True)
        ), as_of)


__all__ = ["Custody", "CustodyChain", "HandOver"]
