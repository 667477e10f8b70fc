"""Reference data (admin): trials, locations, site activation."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter

from api.deps import LedgerDep, OnceDep, UserDep
from api.errors import errors
from api.routes import created, record
from api.schemas.commands import LocationIn, SiteKeyIn, StepIn, TrialIn
from api.schemas.common import Recorded
from api.schemas.results import Created, SiteKeyRegistered

router = APIRouter(tags=["admin"])


@router.post("/trials", status_code=201, response_model=Created, responses=errors(409))
def register_trial(body: TrialIn, user: UserDep, ledger: LedgerDep, once: OnceDep) -> Any:
    """Register a trial with its countries and expiry windows (admin)."""
    return record(
        ledger,
        once,
        lambda: ledger.register_trial(
            user.actor,
            code=body.code,
            title=body.title,
            sponsor=body.sponsor,
            countries=body.countries,
            do_not_ship_days=body.do_not_ship_days,
            do_not_dispense_days=body.do_not_dispense_days,
            occurred_at=body.occurred_at,
        ),
        created,
        201,
    )


@router.post("/locations", status_code=201, response_model=Created, responses=errors(404, 409))
def register_location(body: LocationIn, user: UserDep, ledger: LedgerDep, once: OnceDep) -> Any:
    """Register a manufacturing site, depot or clinical site by its GLN (admin)."""
    return record(
        ledger,
        once,
        lambda: ledger.register_location(
            user.actor,
            gln=body.gln,
            kind=body.kind,
            name=body.name,
            country=body.country,
            trial_id=body.trial_id,
            site_number=body.site_number,
            address=body.address,
            occurred_at=body.occurred_at,
        ),
        created,
        201,
    )


@router.post("/sites/{site_id}/activation", response_model=Recorded, responses=errors(404, 409))
def activate_site(site_id: UUID, body: StepIn, user: UserDep, ledger: LedgerDep, once: OnceDep) -> Any:
    """Activate a clinical site so that it may receive kits (admin)."""
    return record(ledger, once, lambda: ledger.activate_site(user.actor, site_id, body.occurred_at))


@router.post(
    "/sites/{site_id}/keys", status_code=201, response_model=SiteKeyRegistered, responses=errors(404, 409)
)
def register_site_key(site_id: UUID, body: SiteKeyIn, user: UserDep, ledger: LedgerDep, once: OnceDep) -> Any:
    """Register a clinical site's Ed25519 public key, obtained from the site out of band; it replaces the
    site's previous key for signing receipts (admin)."""
    return record(
        ledger,
        once,
        lambda: ledger.register_site_key(user.actor, site_id, body.public_key, body.occurred_at),
        lambda written, events: SiteKeyRegistered(key_id=written.ids["key_id"], events=events),
        201,
    )
