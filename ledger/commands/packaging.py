"""Packaging into blinded kits and release for clinical use: QA disposition, QP certification,
sponsor release per country, expiry extension by relabelling."""

from __future__ import annotations

from datetime import date
from typing import Annotated
from uuid import UUID

from pydantic import Field

from ledger.commands.base import Code, Command, Identifier, LateReason, LongText, Part, When
from ledger.commands.materials import LotQuantity
from ledger.values import Actor, Signature

Units = Annotated[int, Field(ge=0, le=100_000_000)]


class Arm(Part):
    """One treatment arm of a packaging run: which drug-product lot, how many units were issued."""

    treatment: Code
    dp_lot_id: UUID
    units_per_kit: Annotated[int, Field(ge=1, le=10_000)]
    units_issued: Units
    samples: Units = 0
    rejects: Units = 0


class KitListEntry(Part):
    """One line of the kit list: a kit number and its (blinded) treatment."""

    _pair = ("kit_number", "treatment")

    kit_number: Code
    treatment: Code


class Package(Command):
    """Package drug-product units into blinded kits per the kit list, checked by a second person."""

    batch_number: Code
    trial_id: UUID
    location_id: UUID
    kit_gtin: Identifier
    label_version: Code
    arms: Annotated[tuple[Arm, ...], Field(min_length=1, max_length=20)]
    kit_list: Annotated[tuple[KitListEntry, ...], Field(min_length=1, max_length=20_000)]
    components: Annotated[tuple[LotQuantity, ...], Field(max_length=100)] = ()
    checked_by: Actor
    occurred_at: When = None
    late_reason: LateReason = None


class DisposePackaging(Command):
    """QA's disposition of a packaged batch: released or rejected (signed with that meaning)."""

    run_id: UUID
    released: bool
    signature: Signature | None
    reason: LongText | None = None
    occurred_at: When = None
    late_reason: LateReason = None


class CertifyPackaging(Command):
    """The QP certifies a packaged batch (signed `certified`)."""

    run_id: UUID
    signature: Signature | None
    occurred_at: When = None
    late_reason: LateReason = None


class SponsorRelease(Command):
    """The sponsor's regulatory release of a batch for one country of the trial (signed)."""

    run_id: UUID
    country: Identifier
    signature: Signature | None
    occurred_at: When = None
    late_reason: LateReason = None


class ExtendExpiry(Command):
    """Relabel every kit of a run still in the supply chain with a later, supported expiry (signed)."""

    run_id: UUID
    new_expiry: date
    signature: Signature | None
    reason: LongText
    occurred_at: When = None
    late_reason: LateReason = None
