"""Material lots and formulation: goods receipt, QA decisions, corrections, manufacturing batches."""

from __future__ import annotations

from decimal import Decimal

from ledger import gs1
from ledger.application.core import Ledger, handles
from ledger.application.rules import day, reason
from ledger.commands import (
    CorrectLotQuantity,
    Formulate,
    HoldLot,
    RecallLot,
    ReceiveLot,
    ReceiveLotTransfer,
    RecordDeviation,
    Recorded,
    RejectLot,
    ReleaseLot,
    TransferLot,
)
from ledger.domain import LocationKind, Lot, LotKind, ManufacturingBatch
from ledger.domain.base import require_role, stamp
from ledger.errors import InvalidInput, LotNotUsable
from ledger.values import Actor, Meaning, Role


@handles(ReceiveLot)
def receive_lot(ledger: Ledger, actor: Actor, cmd: ReceiveLot) -> Recorded:
    """A lot received from a supplier (or made in-house outside Lotline); it starts in quarantine."""
    require_role(actor, "receive a lot", Role.MANUFACTURING, Role.DEPOT, at=cmd.location_id)
    if cmd.kind == LotKind.DRUG_PRODUCT and cmd.supplier is None:
        raise InvalidInput(
            "a drug-product lot is produced by a formulation, or received from a supplier", field="supplier"
        )
    ledger.require_place(cmd.location_id, LocationKind.MANUFACTURING_SITE, LocationKind.DEPOT)
    audit = stamp(actor, cmd.occurred_at)
    lot = Lot.receive(
        audit,
        gtin=cmd.gtin,
        lot_number=cmd.lot_number,
        kind=cmd.kind,
        material=cmd.material,
        quantity=cmd.quantity,
        location_id=cmd.location_id,
        manufactured_on=cmd.manufactured_on,
        expires_on=cmd.expires_on,
        retest_on=cmd.retest_on,
        supplier=cmd.supplier,
        supplier_lot=cmd.supplier_lot,
        received_on=day(audit),
        max_shelf_life=ledger.max_shelf_life,
    )
    return ledger.record(lot, created=(lot.id,))


@handles(ReleaseLot)
def release_lot(ledger: Ledger, actor: Actor, cmd: ReleaseLot) -> Recorded:
    """QA release on test results or the supplier's certificate of analysis."""
    sig = ledger.qa_signature(actor, cmd.signature, Meaning.RELEASED, "release a lot")
    lot = ledger.get(Lot, cmd.lot_id)
    lot.release(stamp(actor, cmd.occurred_at), sig.as_dict(), cmd.results_ref)
    return ledger.record(lot)


@handles(RejectLot)
def reject_lot(ledger: Ledger, actor: Actor, cmd: RejectLot) -> Recorded:
    sig = ledger.qa_signature(actor, cmd.signature, Meaning.REJECTED, "reject a lot")
    lot = ledger.get(Lot, cmd.lot_id)
    lot.reject(stamp(actor, cmd.occurred_at, reason(cmd.reason)), sig.as_dict(), cmd.results_ref)
    return ledger.record(lot)


@handles(HoldLot)
def hold_lot(ledger: Ledger, actor: Actor, cmd: HoldLot) -> Recorded:
    require_role(actor, "put a lot on hold", Role.QA)
    lot = ledger.get(Lot, cmd.lot_id)
    lot.put_on_hold(stamp(actor, cmd.occurred_at, reason(cmd.reason)))
    return ledger.record(lot)


@handles(RecallLot)
def recall_lot(ledger: Ledger, actor: Actor, cmd: RecallLot) -> Recorded:
    """Mark a lot recalled: nothing made from it ships or is dispensed from now on."""
    sig = ledger.qa_signature(actor, cmd.signature, Meaning.APPROVED, "recall a lot")
    lot = ledger.get(Lot, cmd.lot_id)
    lot.recall(stamp(actor, cmd.occurred_at, reason(cmd.reason)), sig.as_dict())
    return ledger.record(lot)


@handles(CorrectLotQuantity)
def correct_lot_quantity(ledger: Ledger, actor: Actor, cmd: CorrectLotQuantity) -> Recorded:
    """Correct a mis-recorded received quantity with a new event that names the one it corrects."""
    require_role(actor, "correct a lot", Role.QA)
    lot = ledger.get(Lot, cmd.lot_id)
    if not (1 <= cmd.corrects_version <= lot.version):
        raise InvalidInput(
            f"lot {lot.lot_number} has no event version {cmd.corrects_version}", field="corrects_version"
        )
    audit = stamp(actor, cmd.occurred_at, reason(cmd.reason))
    lot.correct_received_quantity(audit, cmd.corrects_version, cmd.quantity)
    return ledger.record(lot)


@handles(TransferLot)
def transfer_lot(ledger: Ledger, actor: Actor, cmd: TransferLot) -> Recorded:
    """Send a lot from the place that holds it to another manufacturing site or depot."""
    require_role(actor, "send a lot", Role.MANUFACTURING, Role.DEPOT, at=cmd.from_id)
    number = gs1.gs1_text(cmd.transfer_number, "transfer number", "transfer_number")
    ledger.require_place(cmd.to_id, LocationKind.MANUFACTURING_SITE, LocationKind.DEPOT, field="to_id")
    lot = ledger.get(Lot, cmd.lot_id)
    lot.ship_transfer(stamp(actor, cmd.occurred_at), number, cmd.from_id, cmd.to_id)
    return ledger.record(lot)


@handles(ReceiveLotTransfer)
def receive_lot_transfer(ledger: Ledger, actor: Actor, cmd: ReceiveLotTransfer) -> Recorded:
    """Receipt of a transferred lot by the place it was sent to."""
    require_role(actor, "receive a lot", Role.MANUFACTURING, Role.DEPOT, at=cmd.location_id)
    lot = ledger.get(Lot, cmd.lot_id)
    remarks = cmd.remarks.strip() if cmd.remarks else None
    lot.receive_transfer(stamp(actor, cmd.occurred_at, remarks), cmd.location_id, cmd.intact)
    return ledger.record(lot)


@handles(Formulate)
def formulate(ledger: Ledger, actor: Actor, cmd: Formulate) -> Recorded:
    """One manufacturing batch: consume released lots, produce a drug-product lot in quarantine."""
    require_role(actor, "record a formulation", Role.MANUFACTURING, at=cmd.location_id)
    checked_by = cmd.checked_by
    if checked_by.principal == actor.principal:
        raise InvalidInput("the second-person check must be done by someone else", field="checked_by")
    require_role(checked_by, "check a formulation", Role.MANUFACTURING, Role.QA, at=cmd.location_id)
    batch_number = gs1.gs1_text(cmd.batch_number, "batch number", "batch_number")
    ledger.require_place(cmd.location_id, LocationKind.MANUFACTURING_SITE)
    if len({i.lot_id for i in cmd.inputs}) != len(cmd.inputs):
        raise InvalidInput("each input lot is listed once", field="inputs")
    theoretical, actual = cmd.theoretical_yield, cmd.actual_yield
    if not actual.same_kind(theoretical) or theoretical.amount <= 0:
        raise InvalidInput("yields must be positive and of the same kind", field="theoretical_yield")
    audit = stamp(actor, cmd.occurred_at)
    today = day(audit)
    batch_id = ManufacturingBatch.create_id(batch_number)
    lots, consumed = [], []
    for line in cmd.inputs:
        lot = ledger.get(Lot, line.lot_id)
        lot.require_at(cmd.location_id, "formulating with it")  # first: nothing said of a lot elsewhere
        if lot.kind == LotKind.DRUG_PRODUCT:
            raise LotNotUsable(lot.id, lot.lot_number, "a drug-product lot is packaged, not formulated")
        lot.require_usable(today)
        taken = lot.consume(audit, line.quantity, batch_id, "formulation")
        lots.append(lot)
        consumed.append(
            {
                "lot_id": lot.id,
                "lot_number": lot.lot_number,
                "kind": str(lot.kind),
                "quantity": taken.as_dict(),
            }
        )
    api_lots = [lot for lot in lots if lot.kind == LotKind.API]
    if cmd.placebo:
        if api_lots:
            raise InvalidInput("a placebo batch consumes no API lot", field="inputs")
        if cmd.output.expires_on > min(lot.use_by() for lot in lots):
            raise InvalidInput("the placebo cannot expire after its excipients", field="output.expires_on")
    elif not api_lots:
        raise InvalidInput(
            "a formulation consumes at least one API lot (an in-house placebo batch says `placebo`)",
            field="inputs",
        )
    elif cmd.output.expires_on > min(lot.use_by() for lot in api_lots):
        raise InvalidInput("the drug product cannot expire after its API", field="output.expires_on")
    dp_lot = Lot.receive(
        audit,
        gtin=cmd.output.gtin,
        lot_number=cmd.output.lot_number,
        kind=LotKind.DRUG_PRODUCT,
        material=cmd.output.material,
        quantity=actual,
        location_id=cmd.location_id,
        manufactured_on=today,
        expires_on=cmd.output.expires_on,
        retest_on=cmd.output.retest_on,
        produced_by_batch_id=batch_id,
        received_on=today,
        max_shelf_life=ledger.max_shelf_life,
    )
    yield_pct = (actual.base / theoretical.base * 100).quantize(Decimal("0.01"))
    limits = _yield_limits(cmd, yield_pct)
    batch = ManufacturingBatch(
        batch_number=batch_number,
        audit=audit,
        product=cmd.product,
        location_id=cmd.location_id,
        inputs=consumed,
        output_lot_id=dp_lot.id,
        theoretical_yield=theoretical.as_dict(),
        actual_yield=actual.as_dict(),
        yield_percent=str(yield_pct),
        equipment=list(cmd.equipment),
        performed_by=actor.as_dict(),
        checked_by=checked_by.as_dict(),
        yield_limits=limits,
        deviation=cmd.deviation.model_dump() if cmd.deviation else None,
    )
    return ledger.record(batch, dp_lot, *lots, created=(batch.id, dp_lot.id))


def _yield_limits(cmd: Formulate, yield_pct: Decimal) -> dict[str, str] | None:
    """The stated limits as recorded; refuses a yield above the theoretical one, or outside the
    limits, that comes without the deviation explaining it (21 CFR 211.192)."""
    limits = cmd.yield_limits
    if limits is not None and limits.low_percent > limits.high_percent:
        raise InvalidInput("yield limits run from low to high", field="yield_limits")
    if yield_pct > 100:
        problem = f"the actual yield is {yield_pct}% of the theoretical yield"
    elif limits is not None and not (limits.low_percent <= yield_pct <= limits.high_percent):
        stated = f"{limits.low_percent}-{limits.high_percent}%"
        problem = f"the yield {yield_pct}% is outside the stated limits {stated}"
    else:
        problem = ""
    if problem and cmd.deviation is None:
        raise InvalidInput(f"{problem}: record it with the deviation that explains it", field="deviation")
    if limits is None:
        return None
    return {"low_percent": str(limits.low_percent), "high_percent": str(limits.high_percent)}


@handles(RecordDeviation)
def record_deviation(ledger: Ledger, actor: Actor, cmd: RecordDeviation) -> Recorded:
    require_role(actor, "record a deviation", Role.MANUFACTURING, Role.QA)
    batch = ledger.get(ManufacturingBatch, cmd.batch_id)
    require_role(actor, "record a deviation", Role.MANUFACTURING, Role.QA, at=batch.location_id)
    audit = stamp(actor, cmd.occurred_at, cmd.description)
    batch.record_deviation(audit, cmd.number, cmd.description, cmd.classification)
    return ledger.record(batch)
