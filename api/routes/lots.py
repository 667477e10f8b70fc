"""Material lots: goods receipt (manufacturing, depot) and QA's decisions on them."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter

from api.deps import LedgerDep, OnceDep, SignerDep, UserDep
from api.errors import errors
from api.routes import created, record
from api.schemas.commands import (
    CorrectQuantityIn,
    HoldLotIn,
    RecallLotIn,
    ReceiveLotIn,
    RejectLotIn,
    ReleaseLotIn,
)
from api.schemas.common import QuantityIn, Recorded
from api.schemas.results import Created
from ledger.values import Quantity

router = APIRouter(tags=["lots"])


def quantity(q: QuantityIn, field: str) -> Quantity:
    """The ledger's quantity (range and unit checks name `field`)."""
    return Quantity.of(q.amount, q.unit, field)


@router.post("/lots", status_code=201, response_model=Created, responses=errors(404, 409))
def receive_lot(body: ReceiveLotIn, user: UserDep, ledger: LedgerDep, once: OnceDep) -> Any:
    """Receive a lot from a supplier; it starts in quarantine (manufacturing, depot)."""
    return record(
        ledger,
        once,
        lambda: ledger.receive_lot(
            user.actor,
            gtin=body.gtin,
            lot_number=body.lot_number,
            kind=body.kind,
            material=body.material,
            quantity=quantity(body.quantity, "quantity"),
            location_id=body.location_id,
            manufactured_on=body.manufactured_on,
            expires_on=body.expires_on,
            retest_on=body.retest_on,
            supplier=body.supplier,
            supplier_lot=body.supplier_lot,
            occurred_at=body.occurred_at,
        ),
        created,
        201,
    )


@router.post("/lots/{lot_id}/release", response_model=Recorded, responses=errors(404, 409))
def release_lot(
    lot_id: UUID, body: ReleaseLotIn, user: UserDep, signer: SignerDep, ledger: LedgerDep, once: OnceDep
) -> Any:
    """Release a quarantined lot on its results, signed with meaning `released` (QA)."""
    return record(
        ledger,
        once,
        lambda: ledger.release_lot(
            user.actor,
            lot_id,
            signature=signer.sign(body.signature),
            results_ref=body.results_ref,
            occurred_at=body.occurred_at,
        ),
    )


@router.post("/lots/{lot_id}/rejection", response_model=Recorded, responses=errors(404, 409))
def reject_lot(
    lot_id: UUID, body: RejectLotIn, user: UserDep, signer: SignerDep, ledger: LedgerDep, once: OnceDep
) -> Any:
    """Reject a lot, signed with meaning `rejected` (QA)."""
    return record(
        ledger,
        once,
        lambda: ledger.reject_lot(
            user.actor,
            lot_id,
            signature=signer.sign(body.signature),
            reason=body.reason,
            results_ref=body.results_ref,
            occurred_at=body.occurred_at,
        ),
    )


@router.post("/lots/{lot_id}/hold", response_model=Recorded, responses=errors(404, 409))
def hold_lot(lot_id: UUID, body: HoldLotIn, user: UserDep, ledger: LedgerDep, once: OnceDep) -> Any:
    """Put a lot on hold pending an investigation (QA)."""
    return record(
        ledger,
        once,
        lambda: ledger.hold_lot(user.actor, lot_id, reason=body.reason, occurred_at=body.occurred_at),
    )


@router.post("/lots/{lot_id}/recall", response_model=Recorded, responses=errors(404, 409))
def recall_lot(
    lot_id: UUID, body: RecallLotIn, user: UserDep, signer: SignerDep, ledger: LedgerDep, once: OnceDep
) -> Any:
    """Recall a lot: nothing made from it ships or is dispensed any more; signed `approved` (QA)."""
    return record(
        ledger,
        once,
        lambda: ledger.recall_lot(
            user.actor,
            lot_id,
            signature=signer.sign(body.signature),
            reason=body.reason,
            occurred_at=body.occurred_at,
        ),
    )


@router.post("/lots/{lot_id}/quantity-corrections", response_model=Recorded, responses=errors(404, 409))
def correct_lot_quantity(
    lot_id: UUID, body: CorrectQuantityIn, user: UserDep, ledger: LedgerDep, once: OnceDep
) -> Any:
    """Correct a mis-keyed received quantity with an event naming the one it corrects (QA)."""
    return record(
        ledger,
        once,
        lambda: ledger.correct_lot_quantity(
            user.actor,
            lot_id,
            corrects_version=body.corrects_version,
            quantity=quantity(body.quantity, "quantity"),
            reason=body.reason,
            occurred_at=body.occurred_at,
        ),
    )
