"""At a site (or depot): receipt of a shipment per kit, storage excursions, dispensing, returns and
destruction."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field

from ledger.commands.base import Celsius, Code, Command, KitIds, LateReason, LongText, Subject, Text, When
from ledger.site_keys import SiteSignature


class ConfirmReceipt(Command):
    """The site's receipt, per kit number: received, damaged or missing (with a remark on each damaged
    or missing kit, if the site has one); an excursion quarantines.
    With `site_signature`, the site's own Ed25519 signature is verified before anything is recorded."""

    shipment_id: UUID
    site_id: UUID
    outcomes: Annotated[dict[Code, str], Field(min_length=1, max_length=20_000)]
    remarks: Annotated[
        dict[Code, LongText],
        Field(
            max_length=20_000,
            description="What the site says of a damaged or missing kit (the state of the box, where it "
            "was looked for), by kit number; only for kits received damaged or missing.",
        ),
    ] = {}
    logger_min: Celsius | None = None
    logger_max: Celsius | None = None
    occurred_at: When = None
    late_reason: LateReason = None
    site_signature: SiteSignature | None = None


class ReportExcursion(Command):
    """A temperature excursion in storage at a place: its kits go to quarantine until QA decides."""

    location_id: UUID
    kit_ids: KitIds
    min_celsius: Celsius
    max_celsius: Celsius
    duration_minutes: Annotated[int, Field(ge=1, le=525_600)]
    occurred_at: When = None
    late_reason: LateReason = None


class Dispense(Command):
    """Dispense a received kit to a pseudonymous subject, inside the do-not-dispense window."""

    kit_id: UUID
    site_id: UUID
    subject: Subject
    occurred_at: When = None
    late_reason: LateReason = None


class ReturnKit(Command):
    """A subject returned a kit to the site: used, unused or partially used."""

    kit_id: UUID
    site_id: UUID
    condition: Literal["used", "unused", "partially_used"]
    occurred_at: When = None
    late_reason: LateReason = None


class DestroyKits(Command):
    """Destroy kits held at `location_id` whose destruction QA authorised, with the certificate."""

    location_id: UUID
    kit_ids: KitIds
    certificate: Code
    method: Text
    occurred_at: When = None
    late_reason: LateReason = None


class ReturnToDepot(Command):
    """The site sends kits it holds back to a depot outside any recall (stock it no longer needs,
    kits subjects brought back, damaged kits), with the reason: in transit until the depot has them."""

    site_id: UUID
    depot_id: UUID
    kit_ids: KitIds
    reason: LongText
    occurred_at: When = None
    late_reason: LateReason = None
