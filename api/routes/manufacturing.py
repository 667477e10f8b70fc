"""Manufacturing: formulation batches (with their second-person check) and deviations."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter

from api.deps import LedgerDep, OnceDep, SignerDep, UserDep
from api.errors import errors
from api.routes import record
from api.routes.lots import quantity
from api.schemas.commands import DeviationIn, FormulateIn
from api.schemas.common import Recorded, RecordedEvent
from api.schemas.results import Formulated
from ledger.application import OutputLot

router = APIRouter(tags=["manufacturing"])


def _formulated(ids: tuple[UUID, UUID], events: list[RecordedEvent]) -> Formulated:
    return Formulated(batch_id=ids[0], dp_lot_id=ids[1], events=events)


@router.post("/batches", status_code=201, response_model=Formulated, responses=errors(404, 409))
def formulate(body: FormulateIn, user: UserDep, signer: SignerDep, ledger: LedgerDep, once: OnceDep) -> Any:
    """Record a formulation batch: released lots in, a drug-product lot (in quarantine) out
    (manufacturing; `checked_by` re-authenticates the second person)."""
    out = body.output
    return record(
        ledger,
        once,
        lambda: ledger.formulate(
            user.actor,
            batch_number=body.batch_number,
            product=body.product,
            location_id=body.location_id,
            inputs=[
                (i.lot_id, quantity(i.quantity, f"inputs.{n}.quantity")) for n, i in enumerate(body.inputs)
            ],
            output=OutputLot(out.gtin, out.lot_number, out.material, out.expires_on, out.retest_on),
            theoretical_yield=quantity(body.theoretical_yield, "theoretical_yield"),
            actual_yield=quantity(body.actual_yield, "actual_yield"),
            equipment=body.equipment,
            checked_by=signer.checker(body.checked_by),
            occurred_at=body.occurred_at,
        ),
        _formulated,
        201,
    )


@router.post("/batches/{batch_id}/deviations", response_model=Recorded, responses=errors(404, 409))
def record_deviation(
    batch_id: UUID, body: DeviationIn, user: UserDep, ledger: LedgerDep, once: OnceDep
) -> Any:
    """Record a deviation against a batch (manufacturing, QA)."""
    return record(
        ledger,
        once,
        lambda: ledger.record_deviation(
            user.actor,
            batch_id,
            number=body.number,
            description=body.description,
            classification=body.classification,
            occurred_at=body.occurred_at,
        ),
    )
