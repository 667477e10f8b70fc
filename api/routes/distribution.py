"""Distribution and QA on kits: shipments from a depot, quarantine decisions, destruction authorisation."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import LedgerDep, OnceDep, SignerDep, UserDep
from api.errors import errors
from api.routes import created, record
from api.schemas.commands import AuthoriseDestructionIn, QuarantineDecisionIn, ShipIn
from api.schemas.common import Recorded
from api.schemas.results import Created

router = APIRouter(tags=["distribution"])


@router.post("/shipments", status_code=201, response_model=Created, responses=errors(404, 409))
def ship(body: ShipIn, user: UserDep, ledger: LedgerDep, once: OnceDep) -> Any:
    """Ship released kits from a depot to an activated site; every kit is checked, all or nothing (depot)."""
    return record(
        ledger,
        once,
        lambda: ledger.ship(
            user.actor,
            shipment_number=body.shipment_number,
            sscc=body.sscc,
            from_id=body.from_id,
            to_id=body.to_id,
            kit_ids=body.kit_ids,
            min_celsius=body.min_celsius,
            max_celsius=body.max_celsius,
            logger_id=body.logger_id,
            carrier=body.carrier,
            occurred_at=body.occurred_at,
        ),
        created,
        201,
    )


@router.post("/kits/quarantine-decisions", response_model=Recorded, responses=errors(404, 409))
def decide_quarantine(
    body: QuarantineDecisionIn, user: UserDep, signer: SignerDep, ledger: LedgerDep, once: OnceDep
) -> Any:
    """Release quarantined kits back to use, or reject them; signed `released` or `rejected` (QA)."""
    return record(
        ledger,
        once,
        lambda: ledger.decide_quarantine(
            user.actor,
            kit_ids=body.kit_ids,
            release=body.release,
            signature=signer.sign(body.signature),
            reason=body.reason,
            occurred_at=body.occurred_at,
        ),
    )


@router.post("/kits/destruction-authorisations", response_model=Recorded, responses=errors(404, 409))
def authorise_destruction(
    body: AuthoriseDestructionIn, user: UserDep, signer: SignerDep, ledger: LedgerDep, once: OnceDep
) -> Any:
    """Authorise the destruction of kits in writing, signed `authorised_destruction` (QA)."""
    return record(
        ledger,
        once,
        lambda: ledger.authorise_destruction(
            user.actor,
            kit_ids=body.kit_ids,
            signature=signer.sign(body.signature),
            reason=body.reason,
            occurred_at=body.occurred_at,
        ),
    )
