"""Request and response shapes of recall campaigns."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from api.schemas.common import Code, LongText, Page, SignatureIn, Strict, When

Subject = Annotated[str, StringConstraints(min_length=1, max_length=40)]
Outcome = Literal["quarantined", "returned", "dispensed"]

MAX_KITS = 10_000
"""Kits one request may name (a depot's whole stock of a large recall fits in a few requests)."""

KitIds = Annotated[list[UUID], Field(min_length=1, max_length=MAX_KITS)]


class RecallOpenIn(Strict):
    """Open a recall of the suspect lots, signed by QA with meaning `approved`."""

    recall_number: Code
    lot_ids: Annotated[list[UUID], Field(min_length=1, max_length=100)]
    reason: LongText
    classification: Literal["class_i", "class_ii", "class_iii"]
    scope: Literal["all_kits", "unexpired", "undispensed"]
    signature: SignatureIn
    occurred_at: When = None


class RecallAckIn(Strict):
    occurred_at: When = None


class RecallKitReportIn(Strict):
    """What became of one kit: quarantined at the site, returned (sent back to the depot that shipped
    it), or already dispensed (with the subject)."""

    outcome: Outcome
    subject: Subject | None = None
    occurred_at: When = None


class RecallKitLineIn(Strict):
    """One kit of a place's report."""

    kit_id: UUID
    outcome: Outcome
    subject: Subject | None = None


class RecallReportsIn(Strict):
    """A place's report on many of its kits at once: recorded all together, or none if any is refused."""

    kits: Annotated[list[RecallKitLineIn], Field(min_length=1, max_length=MAX_KITS)]
    occurred_at: When = None


class RecallReturnIn(Strict):
    """Kits that sites sent back, received at the depot."""

    depot_id: UUID
    kit_ids: KitIds
    occurred_at: When = None


class RecallDestructionIn(Strict):
    """Kits of the recall destroyed at the depot, after QA's signed authorisation."""

    depot_id: UUID
    kit_ids: KitIds
    certificate: Code
    method: Annotated[str, StringConstraints(min_length=1, max_length=80)]
    occurred_at: When = None


class RecallJustificationIn(Strict):
    justification: LongText
    signature: SignatureIn
    occurred_at: When = None


class RecallCloseIn(Strict):
    signature: SignatureIn
    occurred_at: When = None


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class PlaceStatusOut(Out):
    place_id: str
    name: str
    kind: str
    country: str
    acknowledged_at: str | None
    kits: int
    reported: int
    reconciled: int
    outstanding: int
    reconciled_percent: float


class RecallStatusOut(Out):
    """A recall's live status: places notified and acknowledged, kits reported, reconciled, outstanding."""

    recall_id: UUID
    recall_number: str
    status: str
    classification: str
    scope: str
    reason: str
    lots: list[dict[str, str]]
    opened_at: str
    places_notified: int
    places_acknowledged: int
    acknowledged_percent: float
    kits: int
    reported: int
    reconciled: int
    outstanding: int
    reconciled_percent: float
    reconciled_at: str | None
    seconds_to_reconciliation: float | None
    closed_at: str | None
    outcomes: dict[str, int]
    shipments_in_transit: list[dict[str, Any]]
    places: list[PlaceStatusOut]
    version: int


class TaskKitOut(Out):
    """One kit of a recall, blinded: its number, its status when the recall opened, what was reported."""

    kit_id: UUID
    kit_number: str
    status_at_open: str
    outcome: str | None
    subject: str | None
    reported_at: str | None


class SiteTasksOut(Out):
    """A place's recall task list: only its own kits."""

    recall_id: UUID
    recall_number: str
    site_id: UUID
    acknowledged_at: str | None
    kits: list[TaskKitOut]


class OutstandingPage(Page[TaskKitOut]):
    """Kits not yet accounted for, by kit number."""
