"""Manufacturing: formulation batches (with their second-person check) and deviations."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter

from api.deps import Write
from api.errors import errors
from api.schemas.bodies import Body, body_of
from api.schemas.common import CheckerIn, Recorded
from api.schemas.results import Formulated
from ledger.commands import Formulate, RecordDeviation

router = APIRouter(tags=["manufacturing"])

FormulateIn = Annotated[Body, body_of(Formulate, checked_by=CheckerIn)]
DeviationIn = Annotated[Body, body_of(RecordDeviation, path={"batch_id"})]


@router.post("/batches", status_code=201, response_model=Formulated, responses=errors(404, 409))
def formulate(body: FormulateIn, write: Write) -> Any:
    """Record a formulation batch: released lots in, a drug-product lot (in quarantine) out
    (manufacturing; `checked_by` re-authenticates the second person)."""
    return write(body)


@router.post("/batches/{batch_id}/deviations", response_model=Recorded, responses=errors(404, 409))
def record_deviation(batch_id: UUID, body: DeviationIn, write: Write) -> Any:
    """Record a deviation against a batch (manufacturing, QA)."""
    return write(body, batch_id=batch_id)
