"""At a site (or depot): receipt of a shipment per kit, storage excursions, dispensing, returns and
destruction. A site user may act only at the sites they are bound to (403 otherwise)."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from api.accountability_report import render_accountability
from api.deps import LedgerDep, OwnLocation, OwnSite, ReadDep, StockReader, Write
from api.errors import errors
from api.routes.queries import Limit, Offset, page, shaped
from api.schemas.bodies import Body, body_of
from api.schemas.common import Recorded, SiteSignatureIn
from api.schemas.queries import AccountabilityOut, InboundOut, OutboundOut, PlaceKitsOut, ShipmentOut
from api.schemas.results import ReceiptConfirmed
from api.views import shipment_to
from ledger.commands import (
    ConfirmReceipt,
    DestroyKits,
    Dispense,
    ReceiveReturnedKits,
    ReportExcursion,
    ReturnKit,
    ReturnToDepot,
)
from ledger.commands.base import Code
from ledger.domain.whereabouts import KitStatus, ReceiptOutcome

router = APIRouter(tags=["sites"])

AT_SITE = {"site_id", "kit_id"}
AT_LOCATION = {"location_id"}
ReceiptIn = Annotated[
    Body,
    body_of(
        ConfirmReceipt,
        path={"site_id", "shipment_id"},
        outcomes=dict[Code, ReceiptOutcome],  # an unknown outcome is malformed (422), not a mismatch (409)
        site_signature=SiteSignatureIn | None,
    ),
]
ExcursionIn = Annotated[Body, body_of(ReportExcursion, path=AT_LOCATION)]
DispenseIn = Annotated[Body, body_of(Dispense, path=AT_SITE)]
ReturnIn = Annotated[Body, body_of(ReturnKit, path=AT_SITE)]
DestroyIn = Annotated[Body, body_of(DestroyKits, path=AT_LOCATION)]
SendBackIn = Annotated[Body, body_of(ReturnToDepot, path={"site_id"})]
ReturnsReceivedIn = Annotated[Body, body_of(ReceiveReturnedKits, path={"depot_id"})]
ShipmentStatus = Annotated[
    Literal["in_transit", "received"] | None, Query(description="Only shipments in this status.")
]


@router.get("/sites/{site_id}/accountability", response_model=AccountabilityOut, responses=errors(403, 404))
def accountability(
    site_id: OwnSite, user: StockReader, read: ReadDep, limit: Limit = 1000, offset: Offset = 0
) -> Any:
    """The site's drug accountability: every kit shipped to it, by kit number, and what became of it
    (on its way, missing, on hand, damaged, brought back by its subject, dispensed, destroyed there,
    sent back to a depot); the counts per outcome add up to what was delivered (a site user: their
    own sites). Kit numbers and statuses only: nothing unblinds."""
    answer = read.runner.inventory.accountability(site_id)
    return shaped(AccountabilityOut, answer, read, kits=page(answer.kits, limit, offset))


@router.get(
    "/sites/{site_id}/accountability/report",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}}}, **errors(403, 404)},
)
def accountability_report(site_id: OwnSite, user: StockReader, read: ReadDep) -> Any:
    """The same accountability as a page to print: the reconciliation, then every kit."""
    return HTMLResponse(render_accountability(read.runner.inventory.accountability(site_id)))


@router.get("/sites/{site_id}/shipments", response_model=InboundOut, responses=errors(403))
def inbound_shipments(
    site_id: OwnSite,
    user: StockReader,
    read: ReadDep,
    status: ShipmentStatus = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Any:
    """The shipments addressed to the site, newest first, each with where it comes from, its status
    and kit count (a site user: their own sites; a depot's inbound transfers likewise)."""
    return shaped(InboundOut, read.runner.genealogy.inbound(site_id, status, limit, offset), read)


@router.get("/locations/{location_id}/shipments", response_model=OutboundOut, responses=errors(403))
def outbound_shipments(
    location_id: OwnLocation,
    user: StockReader,
    read: ReadDep,
    status: ShipmentStatus = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Any:
    """The shipments that left the place (a depot's to sites and to other depots), newest first, each
    with where it goes, its status and kit count (a site user: their own sites)."""
    return shaped(OutboundOut, read.runner.genealogy.outbound(location_id, status, limit, offset), read)


@router.get("/locations/{location_id}/kits", response_model=PlaceKitsOut, responses=errors(403))
def kits_at(
    location_id: OwnLocation,
    user: StockReader,
    read: ReadDep,
    status: Annotated[KitStatus | None, Query(description="Only kits in this status.")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Any:
    """The kits a place accounts for, by kit number, a page at a time: those there, on their way to
    it, missing on the way or destroyed there, each with its status, expiry and flags (`expired`,
    `quarantined`, `recalled`: a lot its packaging run was made from is recalled). A site user: their
    own sites. A kit's history: `GET /custody/kits/{kit_id}`."""
    answer = read.runner.genealogy.kits_at(location_id, status=status, limit=limit, offset=offset)
    return shaped(PlaceKitsOut, answer, read, limit=limit, offset=offset)


@router.get("/sites/{site_id}/shipments/{shipment_id}", response_model=ShipmentOut, responses=errors(404))
def inbound_shipment(site_id: OwnSite, shipment_id: UUID, ledger: LedgerDep) -> Any:
    """A shipment addressed to the site: its kit numbers, shipping range and status (a site user:
    their own sites)."""
    return shipment_to(ledger, shipment_id, site_id)


@router.post(
    "/sites/{site_id}/shipments/{shipment_id}/receipt",
    response_model=ReceiptConfirmed,
    responses=errors(403, 404, 409),
)
def confirm_receipt(site_id: OwnSite, shipment_id: UUID, body: ReceiptIn, write: Write) -> Any:
    """Confirm receipt of a shipment, every kit number received, damaged or missing; all or nothing.
    Optionally signed by the site's own registered key (`site_signature`, verified before anything is
    recorded; 403 if it does not verify). Safe to retry with an Idempotency-Key (site)."""
    return write(body, site_id=site_id, shipment_id=shipment_id)


@router.post("/locations/{location_id}/excursions", response_model=Recorded, responses=errors(404, 409))
def report_excursion(location_id: OwnLocation, body: ExcursionIn, write: Write) -> Any:
    """Report a temperature excursion in storage: the kits go to quarantine until QA decides (site, depot)."""
    return write(body, location_id=location_id)


@router.post("/sites/{site_id}/kits/{kit_id}/dispensing", response_model=Recorded, responses=errors(404, 409))
def dispense(site_id: OwnSite, kit_id: UUID, body: DispenseIn, write: Write) -> Any:
    """Dispense a received kit to a pseudonymous subject (site)."""
    return write(body, site_id=site_id, kit_id=kit_id)


@router.post("/sites/{site_id}/kits/{kit_id}/return", response_model=Recorded, responses=errors(404, 409))
def return_kit(site_id: OwnSite, kit_id: UUID, body: ReturnIn, write: Write) -> Any:
    """Record a kit returned to the site: used, unused or partially used (site)."""
    return write(body, site_id=site_id, kit_id=kit_id)


@router.post("/sites/{site_id}/returns", response_model=Recorded, responses=errors(403, 404, 409))
def send_back(site_id: OwnSite, body: SendBackIn, write: Write) -> Any:
    """Send kits the site holds back to a depot outside any recall (stock no longer needed, kits
    subjects brought back, damaged kits), with the reason: they are in transit, out of the site's
    hands, until the depot receives them. A kit of an open recall is refused: it goes back through the
    recall (site)."""
    return write(body, site_id=site_id)


@router.post("/locations/{location_id}/returns", response_model=Recorded, responses=errors(403, 404, 409))
def receive_returns(location_id: OwnLocation, body: ReturnsReceivedIn, write: Write) -> Any:
    """The depot received kits a site sent back outside a recall: held there, `returned`, for QA's
    decision; a kit not sent back to this depot is refused, naming it (depot)."""
    return write(body, depot_id=location_id)


@router.post("/locations/{location_id}/destructions", response_model=Recorded, responses=errors(404, 409))
def destroy(location_id: OwnLocation, body: DestroyIn, write: Write) -> Any:
    """Destroy kits held at this location whose destruction QA authorised, with the certificate
    number; a kit held elsewhere is refused, naming it (site, depot)."""
    return write(body, location_id=location_id)
