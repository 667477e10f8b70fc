"""Recall campaigns: open, acknowledge, report kits, receive returns, destroy, justify, close."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, Field, StringConstraints

from ledger.commands.base import Code, Command, LateReason, LongText, Part, Subject, When, one_line
from ledger.domain.recall import KitOutcome, RecallClass, RecallScope
from ledger.values import Signature

MAX_KITS = 10_000
"""Kits one recall step may name (a depot's whole stock of a large recall fits in a few steps)."""


class OpenRecall(Command):
    """Open a recall (QA, signed `approved`): recall the suspect lots (API, excipient or drug-product)
    and packaging runs (a labelling error), record every kit downstream of them as it is now. With
    `exercise`, a mock recall: the same affected set and tasks, but nothing is recalled or blocked."""

    recall_number: Code
    lot_ids: Annotated[tuple[UUID, ...], Field(max_length=100)] = ()
    run_ids: Annotated[tuple[UUID, ...], Field(max_length=100)] = ()
    reason: LongText
    classification: RecallClass
    scope: RecallScope
    signature: Signature | None
    exercise: Annotated[
        bool,
        Field(
            description="A mock recall (EU GMP chapter 8's periodic exercise): it records the affected "
            "set and each place's tasks like a real recall, and places answer it, but no lot or run is "
            "recalled: the kits stay shippable and dispensable. Places report kits `located` (or "
            "`dispensed`); its report gives the time to locate them, per place and overall."
        ),
    ] = False
    occurred_at: When = None
    late_reason: LateReason = None


class AcknowledgeRecall(Command):
    """A site (or the depot) acknowledges the recall notice."""

    recall_id: UUID
    place_id: UUID
    occurred_at: When = None
    late_reason: LateReason = None


class KitReportLine(Part):
    """What became of one kit: quarantined at the place, returned (sent back to the depot that shipped
    it), or already dispensed (with the subject)."""

    kit_id: UUID
    outcome: KitOutcome
    subject: Subject | None = None


class ReportRecallKits(Command):
    """A place reports on kits of the recall it held, in one write (all or nothing)."""

    recall_id: UUID
    place_id: UUID
    reports: Annotated[tuple[KitReportLine, ...], Field(min_length=1, max_length=MAX_KITS)]
    occurred_at: When = None
    late_reason: LateReason = None


class ReceiveRecallReturns(Command):
    """The depot received kits that sites sent back: they are in its hands and accounted for."""

    recall_id: UUID
    depot_id: UUID
    kit_ids: Annotated[tuple[UUID, ...], Field(min_length=1, max_length=MAX_KITS)]
    occurred_at: When = None
    late_reason: LateReason = None


class DestroyRecalledKits(Command):
    """The place holding kits of the recall (the depot they came back to, or the site or depot where
    they are quarantined) destroys them, after QA's signed authorisation, with the certificate."""

    recall_id: UUID
    place_id: UUID
    kit_ids: Annotated[tuple[UUID, ...], Field(min_length=1, max_length=MAX_KITS)]
    certificate: Code
    method: Annotated[str, StringConstraints(min_length=1, max_length=80), AfterValidator(one_line)]
    occurred_at: When = None
    late_reason: LateReason = None


class JustifyUnaccounted(Command):
    """QA's signed justification for an affected kit that cannot be accounted for."""

    recall_id: UUID
    kit_id: UUID
    justification: LongText
    signature: Signature | None
    occurred_at: When = None
    late_reason: LateReason = None


class CloseRecall(Command):
    """QA closes the recall (signed): refused while any affected kit is unaccounted for."""

    recall_id: UUID
    signature: Signature | None
    occurred_at: When = None
    late_reason: LateReason = None
