"""Material lots: goods receipt (manufacturing, depot) and QA's decisions on them."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter

from api.deps import Write
from api.errors import errors
from api.schemas.bodies import Body, body_of
from api.schemas.common import Recorded, SignatureIn
from api.schemas.results import Created
from ledger.commands import (
    CorrectLotQuantity,
    HoldLot,
    RecallLot,
    ReceiveLot,
    ReceiveLotTransfer,
    RejectLot,
    ReleaseLot,
    TransferLot,
)

router = APIRouter(tags=["lots"])

LOT = {"lot_id"}
ReceiveLotIn = Annotated[Body, body_of(ReceiveLot)]
ReleaseLotIn = Annotated[Body, body_of(ReleaseLot, path=LOT, signature=SignatureIn)]
RejectLotIn = Annotated[Body, body_of(RejectLot, path=LOT, signature=SignatureIn)]
HoldLotIn = Annotated[Body, body_of(HoldLot, path=LOT)]
RecallLotIn = Annotated[Body, body_of(RecallLot, path=LOT, signature=SignatureIn)]
CorrectionIn = Annotated[Body, body_of(CorrectLotQuantity, path=LOT)]
TransferIn = Annotated[Body, body_of(TransferLot, path=LOT)]
TransferReceiptIn = Annotated[Body, body_of(ReceiveLotTransfer, path=LOT)]


@router.post("/lots", status_code=201, response_model=Created, responses=errors(404, 409))
def receive_lot(body: ReceiveLotIn, write: Write) -> Any:
    """Receive a lot from a supplier; it starts in quarantine (manufacturing, depot)."""
    return write(body)


@router.post("/lots/{lot_id}/release", response_model=Recorded, responses=errors(404, 409))
def release_lot(lot_id: UUID, body: ReleaseLotIn, write: Write) -> Any:
    """Release a quarantined lot on its results, signed with meaning `released` (QA)."""
    return write(body, lot_id=lot_id)


@router.post("/lots/{lot_id}/rejection", response_model=Recorded, responses=errors(404, 409))
def reject_lot(lot_id: UUID, body: RejectLotIn, write: Write) -> Any:
    """Reject a lot, signed with meaning `rejected` (QA)."""
    return write(body, lot_id=lot_id)


@router.post("/lots/{lot_id}/hold", response_model=Recorded, responses=errors(404, 409))
def hold_lot(lot_id: UUID, body: HoldLotIn, write: Write) -> Any:
    """Put a lot on hold pending an investigation (QA)."""
    return write(body, lot_id=lot_id)


@router.post("/lots/{lot_id}/recall", response_model=Recorded, responses=errors(404, 409))
def recall_lot(lot_id: UUID, body: RecallLotIn, write: Write) -> Any:
    """Recall a lot: nothing made from it ships or is dispensed any more; signed `approved` (QA)."""
    return write(body, lot_id=lot_id)


@router.post("/lots/{lot_id}/quantity-corrections", response_model=Recorded, responses=errors(404, 409))
def correct_lot_quantity(lot_id: UUID, body: CorrectionIn, write: Write) -> Any:
    """Correct a mis-keyed received quantity with an event naming the one it corrects (QA)."""
    return write(body, lot_id=lot_id)


@router.post("/lots/{lot_id}/transfers", response_model=Recorded, responses=errors(404, 409))
def transfer_lot(lot_id: UUID, body: TransferIn, write: Write) -> Any:
    """Send what remains of a lot from the place holding it to another manufacturing site or depot;
    in transit until received there (manufacturing, depot, bound to the sending place)."""
    return write(body, lot_id=lot_id)


@router.post("/lots/{lot_id}/transfers/receipt", response_model=Recorded, responses=errors(404, 409))
def receive_lot_transfer(lot_id: UUID, body: TransferReceiptIn, write: Write) -> Any:
    """Receive a transferred lot at the place it was sent to; damaged (`intact: false`, with remarks),
    it is put on hold for QA (manufacturing, depot, bound to the receiving place)."""
    return write(body, lot_id=lot_id)
