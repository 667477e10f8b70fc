"""Formulation: a manufacturing batch consumes released lots and produces one drug-product lot."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.base import LedgerAggregate, stable_id
from ledger.errors import AlreadyExists, InvalidInput

DEVIATION_CLASSES = ("minor", "major", "critical")


class ManufacturingBatch(LedgerAggregate):
    """The batch record (21 CFR 211.188): inputs and weights, equipment, yields, who did and who checked."""

    @staticmethod
    def create_id(batch_number: str, **_: Any) -> UUID:
        return stable_id("batch", batch_number)

    class Formulated(LedgerAggregate.Created):
        """The batch was formulated: its inputs, output lot, yields, equipment, who did and who checked.
        Version 2 added the product's stated `yield_limits` (percent, low and high) and the `deviation`
        recorded with the batch to explain a yield outside them (each None when not given)."""

        class_version = 2

        batch_number: str
        audit: dict[str, Any]
        product: str
        location_id: UUID
        inputs: list[dict[str, Any]]
        output_lot_id: UUID
        theoretical_yield: dict[str, str]
        actual_yield: dict[str, str]
        yield_percent: str
        equipment: list[str]
        performed_by: dict[str, str]
        checked_by: dict[str, str]
        yield_limits: dict[str, str] | None
        deviation: dict[str, str] | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Batches recorded before yield checks stated no limits and no deviation with them."""
            state["yield_limits"] = None
            state["deviation"] = None

    @event(Formulated)
    def __init__(
        self,
        batch_number: str,
        audit: dict[str, Any],
        product: str,
        location_id: UUID,
        inputs: list[dict[str, Any]],
        output_lot_id: UUID,
        theoretical_yield: dict[str, str],
        actual_yield: dict[str, str],
        yield_percent: str,
        equipment: list[str],
        performed_by: dict[str, str],
        checked_by: dict[str, str],
        yield_limits: dict[str, str] | None,
        deviation: dict[str, str] | None,
    ) -> None:
        self.batch_number = batch_number
        self.product = product
        self.location_id = location_id
        self.inputs = inputs
        self.output_lot_id = output_lot_id
        self.theoretical_yield = theoretical_yield
        self.actual_yield = actual_yield
        self.yield_percent = Decimal(yield_percent)
        self.equipment = equipment
        self.yield_limits = yield_limits
        self.deviations: list[dict[str, Any]] = [deviation] if deviation else []
        self._touch(audit)

    @property
    def input_lot_ids(self) -> list[UUID]:
        return [UUID(str(i["lot_id"])) for i in self.inputs]

    def record_deviation(
        self, audit: dict[str, Any], number: str, description: str, classification: str
    ) -> None:
        if classification not in DEVIATION_CLASSES:
            raise InvalidInput("classification is minor, major or critical", field="classification")
        if any(d["number"] == number for d in self.deviations):
            raise AlreadyExists("deviation", f"{number} on batch {self.batch_number}")
        self._require_after_last_step(audit, "deviation")
        self._deviation_recorded(audit, number, description, classification)

    class DeviationRecorded(Aggregate.Event):
        """A deviation (minor, major or critical) was recorded against the batch."""

        audit: dict[str, Any]
        number: str
        description: str
        classification: str

    @event(DeviationRecorded)
    def _deviation_recorded(
        self, audit: dict[str, Any], number: str, description: str, classification: str
    ) -> None:
        self.deviations.append(
            {"number": number, "description": description, "classification": classification}
        )
        self._touch(audit)
