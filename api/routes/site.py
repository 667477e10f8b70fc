"""At a site (or depot): receipt of a shipment per kit, storage excursions, dispensing, returns and
destruction. A site user may act only at the sites they are bound to (403 otherwise)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter

from api.deps import LedgerDep, OnceDep, OwnLocation, OwnSite, UserDep
from api.errors import errors
from api.routes import record
from api.schemas.commands import DestroyIn, DispenseIn, ExcursionIn, ReceiptIn, ReturnIn, SiteSignatureIn
from api.schemas.common import Recorded, RecordedEvent
from api.schemas.queries import ShipmentOut
from api.schemas.results import ReceiptConfirmed
from api.views import kits_at, shipment_to
from ledger.site_keys import SiteSignature

router = APIRouter(tags=["sites"])


def _receipt(written: Any, events: list[RecordedEvent]) -> ReceiptConfirmed:
    return ReceiptConfirmed(excursion=bool(written.ids.get("excursion")), events=events)


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
def confirm_receipt(
    site_id: OwnSite, shipment_id: UUID, body: ReceiptIn, user: UserDep, ledger: LedgerDep, once: OnceDep
) -> Any:
    """Confirm receipt of a shipment, every kit number received, damaged or missing; all or nothing.
    Optionally signed by the site's own registered key (`site_signature`, verified before anything is
    recorded; 403 if it does not verify). Safe to retry with an Idempotency-Key (site)."""
    return record(
        ledger,
        once,
        lambda: ledger.confirm_receipt(
            user.actor,
            shipment_id,
            site_id=site_id,
            outcomes=dict(body.outcomes),
            logger_min=body.logger_min,
            logger_max=body.logger_max,
            occurred_at=body.occurred_at,
            site_signature=_site_signature(body.site_signature),
        ),
        _receipt,
    )


def _site_signature(signed: SiteSignatureIn | None) -> SiteSignature | None:
    return None if signed is None else SiteSignature(signed.key_id, signed.nonce, signed.signature)


@router.post("/locations/{location_id}/excursions", response_model=Recorded, responses=errors(404, 409))
def report_excursion(
    location_id: OwnLocation, body: ExcursionIn, user: UserDep, ledger: LedgerDep, once: OnceDep
) -> Any:
    """Report a temperature excursion in storage: the kits go to quarantine until QA decides (site, depot)."""
    return record(
        ledger,
        once,
        lambda: ledger.report_excursion(
            user.actor,
            location_id,
            kit_ids=body.kit_ids,
            min_celsius=body.min_celsius,
            max_celsius=body.max_celsius,
            duration_minutes=body.duration_minutes,
            occurred_at=body.occurred_at,
        ),
    )


@router.post("/sites/{site_id}/kits/{kit_id}/dispensing", response_model=Recorded, responses=errors(404, 409))
def dispense(
    site_id: OwnSite, kit_id: UUID, body: DispenseIn, user: UserDep, ledger: LedgerDep, once: OnceDep
) -> Any:
    """Dispense a received kit to a pseudonymous subject (site)."""
    return record(
        ledger,
        once,
        lambda: ledger.dispense(
            user.actor, kit_id, site_id=site_id, subject=body.subject, occurred_at=body.occurred_at
        ),
    )


@router.post("/sites/{site_id}/kits/{kit_id}/return", response_model=Recorded, responses=errors(404, 409))
def return_kit(
    site_id: OwnSite, kit_id: UUID, body: ReturnIn, user: UserDep, ledger: LedgerDep, once: OnceDep
) -> Any:
    """Record a kit returned to the site: used, unused or partially used (site)."""
    return record(
        ledger,
        once,
        lambda: ledger.return_kit(
            user.actor, kit_id, site_id=site_id, condition=body.condition, occurred_at=body.occurred_at
        ),
    )


@router.post("/locations/{location_id}/destructions", response_model=Recorded, responses=errors(404, 409))
def destroy(
    location_id: OwnLocation, body: DestroyIn, user: UserDep, ledger: LedgerDep, once: OnceDep
) -> Any:
    """Destroy kits held at this location whose destruction QA authorised, with the certificate
    number (site, depot)."""

    def step() -> Any:
        kits_at(ledger, location_id, body.kit_ids, "destroy")
        return ledger.destroy(
            user.actor,
            kit_ids=body.kit_ids,
            certificate=body.certificate,
            method=body.method,
            occurred_at=body.occurred_at,
        )

    return record(ledger, once, step)
