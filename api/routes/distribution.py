"""Distribution and QA on kits: shipments from a depot, quarantine decisions, destruction authorisation."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter

from api.deps import Write
from api.errors import errors
from api.schemas.bodies import Body, body_of
from api.schemas.common import Recorded, SignatureIn
from api.schemas.results import Created
from ledger.commands import AuthoriseDestruction, DecideQuarantine, Ship

router = APIRouter(tags=["distribution"])

ShipIn = Annotated[Body, body_of(Ship)]
QuarantineDecisionIn = Annotated[Body, body_of(DecideQuarantine, signature=SignatureIn)]
AuthoriseDestructionIn = Annotated[Body, body_of(AuthoriseDestruction, signature=SignatureIn)]


@router.post("/shipments", status_code=201, response_model=Created, responses=errors(404, 409))
def ship(body: ShipIn, write: Write) -> Any:
    """Ship released kits from a depot to an activated site; every kit is checked, all or nothing (depot)."""
    return write(body)


@router.post("/kits/quarantine-decisions", response_model=Recorded, responses=errors(404, 409))
def decide_quarantine(body: QuarantineDecisionIn, write: Write) -> Any:
    """Release quarantined kits back to use, or reject them; signed `released` or `rejected` (QA)."""
    return write(body)


@router.post("/kits/destruction-authorisations", response_model=Recorded, responses=errors(404, 409))
def authorise_destruction(body: AuthoriseDestructionIn, write: Write) -> Any:
    """Authorise the destruction of kits in writing, signed `authorised_destruction` (QA)."""
    return write(body)
