"""Distribution and QA on kits: shipments from a depot, quarantine decisions, destruction authorisation."""

from __future__ import annotations

from uuid import UUID

from ledger.commands.base import Celsius, Code, Command, Identifier, KitIds, LateReason, LongText, Text, When
from ledger.values import Signature


class Ship(Command):
    """Ship released kits from a depot to an activated site; every kit is checked, all or nothing."""

    shipment_number: Code
    sscc: Identifier
    from_id: UUID
    to_id: UUID
    kit_ids: KitIds
    min_celsius: Celsius
    max_celsius: Celsius
    logger_id: Code | None = None
    carrier: Text | None = None
    occurred_at: When = None
    late_reason: LateReason = None


class DecideQuarantine(Command):
    """QA's decision on quarantined kits: back to use (`released`) or rejected (`rejected`), signed."""

    kit_ids: KitIds
    release: bool
    signature: Signature | None
    reason: LongText
    occurred_at: When = None
    late_reason: LateReason = None


class AuthoriseDestruction(Command):
    """Written, signed authorisation (EU Annex 13) before any kit is destroyed."""

    kit_ids: KitIds
    signature: Signature | None
    reason: LongText
    occurred_at: When = None
    late_reason: LateReason = None


class ReceiveReturnedKits(Command):
    """The depot receives kits a site sent back outside a recall: held there, returned, for QA's
    decision (destruction, in the end)."""

    depot_id: UUID
    kit_ids: KitIds
    occurred_at: When = None
    late_reason: LateReason = None
