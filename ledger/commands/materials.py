"""Material lots and formulation: goods receipt, QA decisions, corrections, manufacturing batches."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated
from uuid import UUID

from pydantic import Field

from ledger.commands.base import Code, Command, Identifier, LateReason, LongText, Part, Text, When
from ledger.domain.lot import LotKind
from ledger.values import Actor, Quantity, Signature


class ReceiveLot(Command):
    """A lot received from a supplier (or made in-house outside Lotline); it starts in quarantine."""

    gtin: Identifier
    lot_number: Code
    kind: LotKind
    material: Text
    quantity: Quantity
    location_id: UUID
    manufactured_on: date
    expires_on: date
    retest_on: date | None = None
    supplier: Text | None = None
    supplier_lot: Code | None = None
    occurred_at: When = None
    late_reason: LateReason = None


class ReleaseLot(Command):
    """QA releases a lot on test results or the supplier's certificate of analysis (signed `released`)."""

    lot_id: UUID
    signature: Signature | None
    results_ref: Text
    occurred_at: When = None
    late_reason: LateReason = None


class RejectLot(Command):
    """QA rejects a lot (signed `rejected`), with the reason."""

    lot_id: UUID
    signature: Signature | None
    reason: LongText
    results_ref: Text | None = None
    occurred_at: When = None
    late_reason: LateReason = None


class HoldLot(Command):
    """QA puts a lot on hold, with the reason."""

    lot_id: UUID
    reason: LongText
    occurred_at: When = None
    late_reason: LateReason = None


class RecallLot(Command):
    """QA marks a lot recalled (signed `approved`): nothing made from it ships or is dispensed."""

    lot_id: UUID
    signature: Signature | None
    reason: LongText
    occurred_at: When = None
    late_reason: LateReason = None


class CorrectLotQuantity(Command):
    """Correct a mis-recorded received quantity with a new event naming the one it corrects."""

    lot_id: UUID
    corrects_version: Annotated[int, Field(ge=1, le=1_000_000)]
    quantity: Quantity
    reason: LongText
    occurred_at: When = None
    late_reason: LateReason = None


class LotQuantity(Part):
    """A quantity taken from one lot."""

    _pair = ("lot_id", "quantity")

    lot_id: UUID
    quantity: Quantity


class OutputLot(Part):
    """The drug-product lot a formulation produces."""

    gtin: Identifier
    lot_number: Code
    material: Text
    expires_on: date
    retest_on: date | None = None


Percent = Annotated[Decimal, Field(gt=0, le=1000, allow_inf_nan=False, max_digits=7, decimal_places=2)]


class YieldLimits(Part):
    """The product's stated yield range, in percent of the theoretical yield (say 95.00 to 100.00)."""

    _pair = ("low_percent", "high_percent")

    low_percent: Percent
    high_percent: Percent


class DeviationLine(Part):
    """A deviation recorded with the step it explains: number, description, classification."""

    number: Code
    description: LongText
    classification: Annotated[str, Field(pattern="^(minor|major|critical)$")]


class Formulate(Command):
    """One manufacturing batch: consume released lots, produce a drug-product lot in quarantine,
    checked by a second person (21 CFR 211.188). An actual yield above the theoretical one, or outside
    the product's `yield_limits`, is recorded only with the `deviation` that explains it."""

    batch_number: Code
    product: Text
    location_id: UUID
    inputs: Annotated[tuple[LotQuantity, ...], Field(min_length=1, max_length=100)]
    output: OutputLot
    theoretical_yield: Quantity
    actual_yield: Quantity
    equipment: Annotated[tuple[Text, ...], Field(max_length=100)] = ()
    checked_by: Actor
    yield_limits: YieldLimits | None = None
    deviation: DeviationLine | None = None
    placebo: bool = False
    """An in-house placebo batch: excipients only, no API lot (said, so that a real batch that forgot
    its API is refused rather than taken for a placebo)."""
    occurred_at: When = None
    late_reason: LateReason = None


class RecordDeviation(Command):
    """A deviation on a manufacturing batch: number, description, classification."""

    batch_id: UUID
    number: Code
    description: LongText
    classification: Annotated[str, Field(pattern="^(minor|major|critical)$")]
    occurred_at: When = None
    late_reason: LateReason = None


class TransferLot(Command):
    """Send what remains of a lot from the place that holds it (`from_id`) to another manufacturing
    site or depot (`to_id`), under a transfer (shipping document) number: in transit until received."""

    lot_id: UUID
    transfer_number: Code
    from_id: UUID
    to_id: UUID
    occurred_at: When = None
    late_reason: LateReason = None


class ReceiveLotTransfer(Command):
    """The lot sent to `location_id` arrived there; one that arrived damaged (`intact` false, with
    `remarks`) is put on hold for QA."""

    lot_id: UUID
    location_id: UUID
    intact: bool = True
    remarks: LongText | None = None
    occurred_at: When = None
    late_reason: LateReason = None
