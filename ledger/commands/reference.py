"""Reference data: trials, locations, site activation and site keys (admin)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, Field, StringConstraints

from ledger.commands.base import Code, Command, Identifier, LateReason, LongText, Text, When, lines, one_line
from ledger.domain.location import LocationKind
from ledger.values import Signature

Days = Annotated[int, Field(ge=0, le=730)]


class RegisterTrial(Command):
    """Register a clinical trial with its countries and expiry windows (do-not-ship, do-not-dispense)."""

    code: Code
    title: Text
    sponsor: Text
    countries: Annotated[tuple[Identifier, ...], Field(min_length=1, max_length=100)]
    do_not_ship_days: Days
    do_not_dispense_days: Days
    occurred_at: When = None
    late_reason: LateReason = None


class RegisterLocation(Command):
    """Register a manufacturing site, depot or clinical site by its GLN."""

    gln: Identifier
    kind: LocationKind
    name: Text
    country: Identifier
    trial_id: UUID | None = None
    site_number: Code | None = None
    address: Annotated[str, StringConstraints(max_length=500), AfterValidator(lines)] = ""
    occurred_at: When = None
    late_reason: LateReason = None


class ActivateSite(Command):
    """Activate a clinical site: from now on it may receive kits."""

    site_id: UUID
    occurred_at: When = None
    late_reason: LateReason = None


class DeactivateSite(Command):
    """Stop a clinical site receiving kits, with the reason: the first step of its close-out."""

    site_id: UUID
    reason: LongText
    occurred_at: When = None
    late_reason: LateReason = None


class CloseOutSite(Command):
    """QA closes a deactivated site out (signed `approved`) once every kit delivered to it is
    accounted for: dispensed, destroyed, sent back, or missing on receipt."""

    site_id: UUID
    signature: Signature | None
    occurred_at: When = None
    late_reason: LateReason = None


class RegisterSiteKey(Command):
    """Register a clinical site's Ed25519 public key (32 bytes, base64); it signs receipts with it."""

    site_id: UUID
    public_key: Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(one_line)]
    occurred_at: When = None
    late_reason: LateReason = None
