"""Queries over the read models: genealogy, recall impact, inventory, custody and audit trail.

Each answer names its freshness. Long lists are paged (`limit`, `offset`). `unblinded=true` (treatment
and drug-product lot per kit) is for QA, QP, recall investigators and inspectors only, and is logged.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from datetime import date
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Response
from pydantic import AwareDatetime, BaseModel

from api.deps import ReadDep, StockReader, Tracer, UnblindingDep, UserDep
from api.errors import AmbiguousKitNumber, errors
from api.readside import ReadSide
from api.schemas.queries import (
    AuditFoundOut,
    BackwardOut,
    CustodyOut,
    ExpiringOut,
    ForwardOut,
    IdOut,
    ImpactOut,
    KitPage,
    KitStockOut,
    RecallNoticesOut,
    StockOut,
    TrailOut,
)
from ledger.access import require_passed_through, sees_place
from ledger.domain import Kit, Location, Lot, ManufacturingBatch, PackagingRun, Shipment, Trial
from ledger.domain.recall import Recall
from ledger.errors import InvalidInput, KitNotFound
from ledger.identity import User
from ledger.values import Meaning, Role
from projections.audit import AuditQuery, as_csv

router = APIRouter(tags=["queries"])
log = logging.getLogger("lotline.api.queries")

Limit = Annotated[int, Query(ge=1, le=1000, description="Items per page.")]
Offset = Annotated[int, Query(ge=0, le=100_000_000, description="Items to skip.")]
Unblinded = Annotated[
    bool,
    Query(
        description="Show each kit's treatment and drug-product lot (QA, QP, recall investigator, inspector)."
    ),
]
ForwardUnblinded = Annotated[
    bool,
    Query(
        description=(
            "Count only the kits that physically contain this lot, and show each kit's treatment and "
            "drug-product lot (QA, QP, recall investigator, inspector). Without it (blinded), every kit "
            "of each packaging run the lot went into is counted, placebo and active alike, so that the "
            "count cannot reveal which kits are active: the unblinded count is therefore smaller (on a "
            "placebo-controlled run with one active kit per placebo kit, half). Use the unblinded count "
            "to know how many kits actually hold the lot; use the blinded one with sites, so that "
            "nobody learns the treatment."
        )
    ),
]
LotIds = Annotated[list[UUID], Query(min_length=1, max_length=100, description="The suspect lots.")]


def shaped(model: type[BaseModel], answer: Any, read: ReadSide, **fields: Any) -> Response:
    """A read model's answer as the API model's JSON, with its freshness; `fields` replace or add fields.

    Validated once into the model and written by pydantic: returned as a model, FastAPI validates it
    again against the route's `response_model` and writes it through `jsonable_encoder`, which took
    as long as the read itself on a forward trace."""
    data = {f.name: getattr(answer, f.name) for f in dataclasses.fields(answer)}
    data.update(fields, freshness=read.freshness(answer.as_of))
    body = model.model_validate(data, from_attributes=True).model_dump_json()
    return Response(body, media_type="application/json")


def page(items: Sequence[Any], limit: int, offset: int) -> dict[str, Any]:
    return {
        "total": len(items),
        "limit": limit,
        "offset": offset,
        "items": list(items[offset : offset + limit]),
    }


# --- genealogy -------------------------------------------------------------------------------------


@router.get("/trace/kits/{kit_id}/backward", response_model=BackwardOut, responses=errors(404))
async def trace_kit_backward(
    kit_id: UUID, user: Tracer, read: ReadDep, blinding: UnblindingDep, unblinded: Unblinded = False
) -> Any:
    """A kit back to every input lot; blinded, every input of its packaging run (all arms)."""
    # On the event loop: a few indexed reads (the run's upstream is kept per process), shorter than
    # the thread hop they would take (api/deps.py); the unblinded read's recording runs in a thread.
    granted = await blinding.granted(unblinded, f"kit {kit_id}")
    answer = read.runner.genealogy.backward_from_kit(kit_id, unblinded=granted)
    return shaped(BackwardOut, answer, read)


@router.get("/trace/lots/{lot_id}/backward", response_model=BackwardOut, responses=errors(404))
def trace_lot_backward(lot_id: UUID, user: Tracer, read: ReadDep) -> Any:
    """A lot back to every lot that went into it, with the formulation steps between."""
    return shaped(BackwardOut, read.runner.genealogy.backward_from_lot(lot_id), read)


@router.get("/trace/lots/{lot_id}/forward", response_model=ForwardOut, responses=errors(404))
def trace_lot_forward(
    lot_id: UUID, user: Tracer, read: ReadDep, blinding: UnblindingDep, unblinded: ForwardUnblinded = False
) -> Any:
    """Everything a lot reached: batches, drug-product lots, runs, kits per place, shipments."""
    answer = read.runner.genealogy.forward_counts(
        lot_id, unblinded=blinding(unblinded, f"lot {lot_id}")
    )
    return shaped(ForwardOut, answer, read)


@router.get("/trace/lots/{lot_id}/forward/kits", response_model=KitPage, responses=errors(404))
def trace_lot_forward_kits(
    lot_id: UUID,
    user: Tracer,
    read: ReadDep,
    blinding: UnblindingDep,
    unblinded: ForwardUnblinded = False,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Any:
    """The kits a lot reached, by kit number, a page at a time, with place, status and subject."""
    answer = read.runner.genealogy.forward_kits(
        [lot_id], unblinded=blinding(unblinded, f"lot {lot_id}"), limit=limit, offset=offset
    )
    return _kit_page(answer, read, limit, offset)


# --- recalls ----------------------------------------------------------------------------------------


@router.get("/recalls", response_model=RecallNoticesOut, responses=errors())
def recall_notices(user: Tracer, read: ReadDep) -> Any:
    """Every recall recorded: which lot, why, who and when."""
    return shaped(RecallNoticesOut, read.runner.recall.notices(), read)


@router.get("/recalls/impact", response_model=ImpactOut, responses=errors(404))
def recall_impact(
    lot_id: LotIds, user: Tracer, read: ReadDep, blinding: UnblindingDep, unblinded: Unblinded = False
) -> Any:
    """What recalling these lots reaches: kits per place and class, open shipments, sites to notify."""
    answer = read.runner.recall.impact(lot_id, unblinded=blinding(unblinded, "recall impact"))
    return shaped(ImpactOut, answer, read)


@router.get("/recalls/impact/kits", response_model=KitPage, responses=errors(404))
def recall_impact_kits(
    lot_id: LotIds,
    user: Tracer,
    read: ReadDep,
    blinding: UnblindingDep,
    unblinded: Unblinded = False,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Any:
    """Every kit recalling these lots reaches, by kit number, a page at a time."""
    answer = read.runner.genealogy.forward_kits(
        lot_id, unblinded=blinding(unblinded, "recall kits"), limit=limit, offset=offset
    )
    return _kit_page(answer, read, limit, offset)


def _kit_page(answer: Any, read: ReadSide, limit: int, offset: int) -> KitPage:
    return KitPage.model_validate(
        {
            "total": answer.total,
            "limit": limit,
            "offset": offset,
            "items": list(answer.items),
            "blinded": answer.blinded,
            "freshness": read.freshness(answer.as_of),
        },
        from_attributes=True,
    )


# --- inventory ----------------------------------------------------------------------------------------


@router.get("/inventory/lots", response_model=StockOut, responses=errors())
def lot_stock(
    user: Tracer,
    read: ReadDep,
    location_id: UUID | None = None,
    kind: Literal["api", "excipient", "packaging_component", "drug_product"] | None = None,
    lot_id: UUID | None = None,
    include_empty: bool = False,
) -> Any:
    """Remaining quantity of each lot at its location."""
    answer = read.runner.inventory.stock(
        location_id=location_id, kind=kind, lot_id=lot_id, include_empty=include_empty
    )
    return shaped(StockOut, answer, read)


@router.get("/inventory/kits", response_model=KitStockOut, responses=errors())
def kit_stock(user: StockReader, read: ReadDep, trial_id: UUID | None = None) -> Any:
    """Kits per place by status and class (a site user: their own sites)."""
    answer = read.runner.inventory.kits_by_place(trial_id=trial_id)
    places = [p for p in answer.places if _sees(user, p.place.id)]
    return shaped(KitStockOut, answer, read, places=places, total=sum(p.total for p in places))


@router.get("/inventory/expiring", response_model=ExpiringOut, responses=errors())
def expiring_kits(
    user: StockReader,
    read: ReadDep,
    within_days: Annotated[int, Query(ge=0, le=3650)] = 60,
    trial_id: UUID | None = None,
    today: date | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Any:
    """Kits still in the supply chain that expire within `within_days` (a site user: their own sites)."""
    answer = read.runner.inventory.expiring_kits(within_days, today=today, trial_id=trial_id)
    kits = [k for k in answer.kits if _sees(user, k.place.id)]
    return shaped(ExpiringOut, answer, read, kits=page(kits, limit, offset))


# --- custody and audit ----------------------------------------------------------------------------------


@router.get("/custody/kits/{kit_id}", response_model=CustodyOut, responses=errors(404))
def kit_custody(kit_id: UUID, user: StockReader, read: ReadDep) -> Any:
    """Every hand-over of a kit (a site user: kits that passed through their sites)."""
    return _custody(read.runner.custody.of_kit(kit_id), user, read)


@router.get("/custody/shipments/{shipment_id}", response_model=CustodyOut, responses=errors(404))
def shipment_custody(shipment_id: UUID, user: StockReader, read: ReadDep) -> Any:
    """A shipment's dispatch and receipt (a site user: shipments to their sites)."""
    return _custody(read.runner.custody.of_shipment(shipment_id), user, read)


Since = Annotated[AwareDatetime | None, Query(description="From this time on (ISO 8601, with a timezone).")]
Until = Annotated[AwareDatetime | None, Query(description="Before this time (ISO 8601, with a timezone).")]
SearchLimit = Annotated[int, Query(ge=1, le=10_000, description="Entries per page (CSV: per file).")]


@router.get(
    "/audit",
    response_model=AuditFoundOut,
    responses={**errors(), 200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def audit_search(
    user: Tracer,
    read: ReadDep,
    principal: Annotated[str | None, Query(max_length=100, description="Who did it (login name).")] = None,
    role: Annotated[Role | None, Query(description="In which role.")] = None,
    event: Annotated[
        str | None, Query(max_length=80, description="`Aggregate.Event` (e.g. `Lot.Released`) or `Event`.")
    ] = None,
    meaning: Annotated[Meaning | None, Query(description="The meaning of the signature it carries.")] = None,
    place_id: Annotated[UUID | None, Query(description="A place it concerns.")] = None,
    entity_id: Annotated[UUID | None, Query(description="The entity it belongs to.")] = None,
    late_entry: Annotated[bool | None, Query(description="Only late entries (true) or only others.")] = None,
    occurred_from: Since = None,
    occurred_to: Until = None,
    recorded_from: Since = None,
    recorded_to: Until = None,
    limit: SearchLimit = 100,
    offset: Offset = 0,
    format: Annotated[Literal["json", "csv"], Query(description="`csv`: the page as a CSV file.")] = "json",
) -> Any:
    """Search the audit trail: every event matching all the criteria given, oldest first, each with its
    chain position (`seq`) and hash, so it can be tied to the verified chain; as JSON or CSV."""
    query = AuditQuery(
        principal=principal, role=None if role is None else str(role), event=event,
        meaning=None if meaning is None else str(meaning), place_id=place_id, entity_id=entity_id,
        late_entry=late_entry, occurred_from=occurred_from, occurred_to=occurred_to,
        recorded_from=recorded_from, recorded_to=recorded_to,
    )
    found = read.runner.audit.search(query, limit, offset)
    if format == "csv":
        headers = {
            "Content-Disposition": 'attachment; filename="lotline-audit.csv"',
            "Lotline-Total": str(found.total),
            "Lotline-As-Of": str(found.as_of),
        }
        return Response(as_csv(found.entries), media_type="text/csv; charset=utf-8", headers=headers)
    return shaped(AuditFoundOut, found, read)


@router.get("/audit/{aggregate_id}", response_model=TrailOut, responses=errors(404))
def audit_trail(
    aggregate_id: UUID, user: Tracer, read: ReadDep, limit: Limit = 100, offset: Offset = 0
) -> Any:
    """Every event of one entity: who, when, why, what changed, and its chain seq and hash."""
    answer = read.runner.audit.trail(aggregate_id)
    return shaped(TrailOut, answer, read, entries=page(answer.entries, limit, offset))


def _custody(answer: Any, user: User, read: ReadSide) -> Response:
    places = {p.id for s in answer.steps for p in (s.from_place, s.to_place) if p is not None}
    require_passed_through(user.role, user.places, places, f"{answer.holder_kind} {answer.holder_id}")
    return shaped(CustodyOut, answer, read)


def _sees(user: User, place_id: UUID) -> bool:
    return sees_place(user.role, user.places, place_id)


# --- ids ----------------------------------------------------------------------------------------------------


@router.get("/ids/{kind}", response_model=IdOut, responses=errors(404, 409), tags=["service"])
def id_of(
    kind: Literal["trial", "location", "lot", "batch", "packaging_run", "kit", "shipment", "recall"],
    user: UserDep,
    read: ReadDep,
    gtin: Annotated[str | None, Query(pattern=r"^[0-9]{14}$")] = None,
    gln: Annotated[str | None, Query(pattern=r"^[0-9]{13}$")] = None,
    number: Annotated[
        str | None,
        Query(
            min_length=1, max_length=40, description="trial code; lot, batch, kit, shipment or recall number"
        ),
    ] = None,
) -> Any:
    """The id of an aggregate from its business key (it may or may not exist); a kit by the number on
    its label alone, where one kit carries it (404 if none, 409 listing the candidates if several)."""
    if kind == "location":
        return IdOut(kind=kind, id=Location.create_id(_given(gln, "gln")))
    key = _given(number, "number")
    if kind == "kit" and gtin is None:
        return IdOut(kind=kind, id=_kit_by_number(read, key))
    if kind in ("lot", "kit"):
        make = Lot.create_id if kind == "lot" else Kit.create_id
        return IdOut(kind=kind, id=make(_given(gtin, "gtin"), key))
    simple: dict[str, Any] = {
        "trial": Trial,
        "batch": ManufacturingBatch,
        "packaging_run": PackagingRun,
        "shipment": Shipment,
        "recall": Recall,
    }
    return IdOut(kind=kind, id=simple[kind].create_id(key))


def _kit_by_number(read: ReadSide, number: str) -> UUID:
    """The kit whose label carries `number`, where one alone does (404 if none; 409 naming each
    candidate's GTIN where several trials used the number: give `gtin` too)."""
    found = read.runner.genealogy.kits_numbered(number)
    if not found:
        raise KitNotFound(number)
    if len(found) > 1:
        raise AmbiguousKitNumber(number, [{"gtin": k.gtin, "id": str(k.kit_id)} for k in found])
    return found[0].kit_id


def _given(value: str | None, field: str) -> str:
    if value is None:
        raise InvalidInput(f"this kind of id needs `{field}`", field=field)
    return value
