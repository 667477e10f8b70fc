"""Reference data (admin): trials, locations, site activation, deactivation and close-out (QA), and
site keys."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter

from api.deps import Write
from api.errors import errors
from api.schemas.bodies import Body, body_of
from api.schemas.common import Recorded, SignatureIn
from api.schemas.results import Created, SiteKeyRegistered
from ledger.commands import (
    ActivateSite,
    CloseOutSite,
    DeactivateSite,
    RegisterLocation,
    RegisterSiteKey,
    RegisterTrial,
)

router = APIRouter(tags=["admin"])

TrialIn = Annotated[Body, body_of(RegisterTrial)]
LocationIn = Annotated[Body, body_of(RegisterLocation)]
ActivationIn = Annotated[Body, body_of(ActivateSite, path={"site_id"})]
SiteKeyIn = Annotated[Body, body_of(RegisterSiteKey, path={"site_id"})]
DeactivationIn = Annotated[Body, body_of(DeactivateSite, path={"site_id"})]
CloseOutIn = Annotated[Body, body_of(CloseOutSite, path={"site_id"}, signature=SignatureIn)]


@router.post("/trials", status_code=201, response_model=Created, responses=errors(409))
def register_trial(body: TrialIn, write: Write) -> Any:
    """Register a trial with its countries and expiry windows (admin)."""
    return write(body)


@router.post("/locations", status_code=201, response_model=Created, responses=errors(404, 409))
def register_location(body: LocationIn, write: Write) -> Any:
    """Register a manufacturing site, depot or clinical site by its GLN (admin)."""
    return write(body)


@router.post("/sites/{site_id}/activation", response_model=Recorded, responses=errors(404, 409))
def activate_site(site_id: UUID, body: ActivationIn, write: Write) -> Any:
    """Activate a clinical site so that it may receive kits (admin)."""
    return write(body, site_id=site_id)


@router.post("/sites/{site_id}/deactivation", response_model=Recorded, responses=errors(404, 409))
def deactivate_site(site_id: UUID, body: DeactivationIn, write: Write) -> Any:
    """Stop a clinical site receiving kits, with the reason: the first step of its close-out (admin)."""
    return write(body, site_id=site_id)


@router.post("/sites/{site_id}/close-out", response_model=Recorded, responses=errors(404, 409, 503))
def close_out_site(site_id: UUID, body: CloseOutIn, write: Write) -> Any:
    """Close a deactivated site out once every kit delivered to it is accounted for (dispensed,
    destroyed, sent back, or missing on receipt): refused (409 site_not_reconciled) naming each kit
    still on its way, on hand, damaged or brought back; see `/sites/{id}/accountability` (QA, signed
    `approved`)."""
    return write(body, site_id=site_id)


@router.post(
    "/sites/{site_id}/keys", status_code=201, response_model=SiteKeyRegistered, responses=errors(404, 409)
)
def register_site_key(site_id: UUID, body: SiteKeyIn, write: Write) -> Any:
    """Register a clinical site's Ed25519 public key, obtained from the site out of band; it replaces the
    site's previous key for signing receipts (admin)."""
    return write(body, site_id=site_id)
