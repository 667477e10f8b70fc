"""Recall impact: for one or several suspect lots, everything downstream and who must be told.

It owns the recall notices (`Lot.Recalled`: which lot, why, who, when) and reads the genealogy's
closure and kit tables for the reach, so its answers are as fresh as the lower of the two
positions. Blinded (the default), every kit of a reached packaging run counts as affected: telling a
blinded reader exactly which kits of a run are affected would tell them the kits' arm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import BigInteger, Column, MetaData, String, Table, Uuid, and_, select

from ledger.domain import KitStatus, LocationKind, Lot
from ledger.errors import InvalidInput, LotNotFound
from projections import genealogy as gen
from projections import kitstate
from projections.base import BatchWriter, Projection, on
from projections.db import reading, select_in
from projections.genealogy import RunRef, ShipmentRef
from projections.views import LocationRef, LotRef, PlaceKits

metadata = MetaData()

notice = Table(
    "recall_notice", metadata,
    Column("lot_id", Uuid, primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("reason", String(2000), nullable=False),
    Column("principal", String(100), nullable=False),
    Column("name", String(200), nullable=False),
    Column("occurred_at", String(40), nullable=False),
)

# Classes of kits a site must still act on: everything not yet destroyed.
_TO_NOTIFY = tuple(c for c in kitstate.STATUS_CLASSES if c != kitstate.DESTROYED)


class _Writer(BatchWriter):
    @on(Lot.Recalled)
    def lot_recalled(self, position: int, e: Any) -> None:
        self.conn.execute(notice.insert().values(
            lot_id=e.originator_id, position=position, reason=e.audit.get("reason", ""),
            principal=e.audit["principal"], name=e.audit["name"], occurred_at=e.audit["occurred_at"],
        ))


@dataclass(frozen=True, slots=True)
class RecallNotice:
    """A recall recorded in the ledger."""

    lot: LotRef
    reason: str
    principal: str
    name: str
    occurred_at: datetime
    position: int


@dataclass(frozen=True, slots=True)
class RecallNotices:
    notices: tuple[RecallNotice, ...]
    as_of: int


@dataclass(frozen=True, slots=True)
class SiteNotice:
    """A clinical site to notify: how many affected kits it holds, expects, dispensed or lost."""

    site: LocationRef
    kits: int
    by_class: dict[str, int]


@dataclass(frozen=True, slots=True)
class Impact:
    """Everything downstream of the suspect lots, grouped the way a recall is worked."""

    lots: tuple[LotRef, ...]
    dp_lots: tuple[LotRef, ...]
    runs: tuple[RunRef, ...]
    places: tuple[PlaceKits, ...]
    by_class: dict[str, int]
    total_kits: int
    open_shipments: tuple[ShipmentRef, ...]
    sites_to_notify: tuple[SiteNotice, ...]
    blinded: bool
    as_of: int


class RecallImpact(Projection):
    """Recall notices, and the impact of any set of lots over the genealogy."""

    name = "recall"
    metadata = metadata
    writer = _Writer

    @property
    def depends_on(self) -> tuple[str, ...]:
        return (gen.Genealogy.name,)

    def impact(self, lot_ids: Sequence[UUID], *, unblinded: bool = False) -> Impact:
        """Affected drug-product lots, kits by place and status class, open shipments, sites to notify."""
        if not lot_ids:
            raise InvalidInput("name at least one lot", field="lot_ids")
        with reading(self.engine) as conn:
            as_of = self.as_of(conn)
            lots = {r["lot_id"]: LotRef.of(r) for r in select_in(conn, gen.lot, "lot_id", set(lot_ids))}
            for lot_id in lot_ids:
                if lot_id not in lots:
                    raise LotNotFound(lot_id)
            found = gen.reach_of(conn, lot_ids, unblinded=unblinded)
            places = gen.place_counts(conn, found) if found.runs else ()
            in_transit = and_(found.kits, gen.kit.c.status == str(KitStatus.IN_TRANSIT))
            shipments = gen.shipments_carrying(conn, in_transit) if found.runs else ()
        by_class: dict[str, int] = {}
        for p in places:
            for cls, n in p.by_class.items():
                by_class[cls] = by_class.get(cls, 0) + n
        return Impact(
            tuple(sorted(lots.values(), key=lambda lt: lt.lot_number)), found.dp_lots, found.runs,
            places, dict(sorted(by_class.items())), sum(p.total for p in places), shipments,
            _sites_to_notify(places), not unblinded, as_of,
        )

    def notices(self) -> RecallNotices:
        """Every recall recorded, in the order they happened."""
        with reading(self.engine) as conn:
            as_of = self.as_of(conn)
            rows = conn.execute(
                select(notice.c.reason, notice.c.principal, notice.c.name.label("actor_name"),
                       notice.c.occurred_at, notice.c.position, gen.lot)
                .join(gen.lot, gen.lot.c.lot_id == notice.c.lot_id)
                .order_by(notice.c.position)
            ).mappings().all()
        return RecallNotices(tuple(
            RecallNotice(LotRef.of(r), r["reason"], r["principal"], r["actor_name"],
                         datetime.fromisoformat(r["occurred_at"]), r["position"])
            for r in rows
        ), as_of)


def _sites_to_notify(places: Sequence[PlaceKits]) -> tuple[SiteNotice, ...]:
    """Clinical sites with affected kits not yet destroyed."""
    found = []
    for p in places:
        if p.place.kind != LocationKind.CLINICAL_SITE:
            continue
        classes = {c: n for c, n in p.by_class.items() if c in _TO_NOTIFY}
        if classes:
            found.append(SiteNotice(p.place, sum(classes.values()), classes))
    return tuple(found)
