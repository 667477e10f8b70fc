"""Answers of the queries: the read models' own answers (`projections/*` dataclasses), each with its
freshness. `answer_of` makes an answer model from a read model's answer, field for field: nested parts
(`LotRef`, `KitView`, ...) are the read model's dataclasses themselves. Blinded answers leave
`treatment` and `dp_lot_id` of each kit null.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any, get_type_hints
from uuid import UUID

from pydantic import BaseModel, ConfigDict, create_model

from api.schemas.common import Freshness, Page
from projections.audit import AuditEntry, AuditFound, Trail
from projections.custody import CustodyChain
from projections.genealogy import (
    BackwardTrace,
    ForwardTrace,
    InboundShipments,
    KitView,
    OutboundShipments,
    PlaceKitList,
)
from projections.inventory import Expiring, ExpiringKit, KitStock, Stock
from projections.recall import Impact, RecallNotices
from projections.views import Accountability, AccountedKit


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def answer_of(view: type, **fields: Any) -> type[Out]:
    """The answer model of a read model's answer `view` (a dataclass): its fields, but `as_of`, which
    the answer tells as `freshness`. `fields`: a field's type where the answer differs (None: leave it
    out), or a new field."""
    hints = get_type_hints(view)
    own: dict[str, Any] = {f.name: (hints[f.name], _default(f)) for f in dataclasses.fields(view)}
    del own["as_of"]
    for name, kind in fields.items():
        if kind is None:
            del own[name]
        else:
            own[name] = (kind, ...)
    own["freshness"] = (Freshness, ...)
    model: type[Out] = create_model(
        view.__name__, __base__=Out, __module__=__name__, __doc__=view.__doc__, **own
    )
    return model


def _default(field: dataclasses.Field[Any]) -> Any:
    return ... if field.default is dataclasses.MISSING else field.default


BackwardOut = answer_of(BackwardTrace)
ForwardOut = answer_of(ForwardTrace, kits=None, subjects=int, total_kits=int)
"""Everything a lot reached, counted; the kits themselves are paged at `.../forward/kits`."""
RecallNoticesOut = answer_of(RecallNotices)
ImpactOut = answer_of(Impact)
StockOut = answer_of(Stock)
KitStockOut = answer_of(KitStock)
ExpiringOut = answer_of(Expiring, kits=Page[ExpiringKit])
CustodyOut = answer_of(CustodyChain)
AccountabilityOut = answer_of(Accountability, kits=Page[AccountedKit])
TrailOut = answer_of(Trail, entries=Page[AuditEntry])
AuditFoundOut = answer_of(AuditFound)
InboundOut = answer_of(InboundShipments)
OutboundOut = answer_of(OutboundShipments)
PlaceKitsOut = answer_of(PlaceKitList, limit=int, offset=int)
"""A page of a place's kits (`kits`, by kit number) of `total`, each with its flags."""


class KitPage(Page[KitView]):
    """Reached kits, by kit number, a page at a time."""

    blinded: bool
    freshness: Freshness


class ShipmentReceipt(BaseModel):
    """A shipment's receipt as the site confirmed it."""

    received_at: str
    received_by: str
    outcomes: dict[str, str]
    logger_min: Decimal | None
    logger_max: Decimal | None
    excursion: bool
    remarks: dict[str, str] = {}
    """What the site said of each damaged or missing kit, by kit number."""


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
    receipt: ShipmentReceipt | None = None
    """What the site confirmed, once it has: each kit's outcome by kit number, the logger's range."""


class IdOut(BaseModel):
    """The id Lotline gives an aggregate with this business key (ids are derived, not assigned)."""

    kind: str
    id: UUID
