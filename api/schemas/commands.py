"""Request bodies of the commands, one per step of the supply chain.

Types and ranges are checked here (a 422 naming the field); business rules (release before use,
mass balance, custody, expiry windows) are the ledger's and answer 409.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field, StringConstraints

from api.schemas.common import (
    Celsius,
    CheckerIn,
    Code,
    Country,
    Gln,
    Gtin,
    LongText,
    QuantityIn,
    SignatureIn,
    Sscc,
    Strict,
    Text,
    When,
)

MAX_KITS = 20_000
KitIds = Annotated[list[UUID], Field(min_length=1, max_length=MAX_KITS)]
Days = Annotated[int, Field(ge=0, le=730)]
Units = Annotated[int, Field(ge=0, le=100_000_000)]


# --- reference data (admin) ---------------------------------------------------------------------


class TrialIn(Strict):
    code: Code
    title: Text
    sponsor: Text
    countries: Annotated[list[Country], Field(min_length=1, max_length=100)]
    do_not_ship_days: Days
    do_not_dispense_days: Days
    occurred_at: When = None


class LocationIn(Strict):
    gln: Gln
    kind: Literal["manufacturing_site", "depot", "clinical_site"]
    name: Text
    country: Country
    trial_id: UUID | None = None
    site_number: Code | None = None
    address: Annotated[str, StringConstraints(max_length=500)] = ""
    occurred_at: When = None


class StepIn(Strict):
    """A step that needs nothing but (optionally) when it happened."""

    occurred_at: When = None


# --- lots (manufacturing, depot, QA) --------------------------------------------------------------


class ReceiveLotIn(Strict):
    gtin: Gtin
    lot_number: Code
    kind: Literal["api", "excipient", "packaging_component", "drug_product"]
    material: Text
    quantity: QuantityIn
    location_id: UUID
    manufactured_on: date
    expires_on: date
    retest_on: date | None = None
    supplier: Text | None = None
    supplier_lot: Code | None = None
    occurred_at: When = None


class ReleaseLotIn(Strict):
    signature: SignatureIn
    results_ref: Text
    occurred_at: When = None


class RejectLotIn(Strict):
    signature: SignatureIn
    reason: LongText
    results_ref: Text | None = None
    occurred_at: When = None


class HoldLotIn(Strict):
    reason: LongText
    occurred_at: When = None


class RecallLotIn(Strict):
    signature: SignatureIn
    reason: LongText
    occurred_at: When = None


class CorrectQuantityIn(Strict):
    corrects_version: Annotated[int, Field(ge=1, le=1_000_000)]
    quantity: QuantityIn
    reason: LongText
    occurred_at: When = None


# --- manufacturing --------------------------------------------------------------------------------


class LotQuantityIn(Strict):
    lot_id: UUID
    quantity: QuantityIn


class OutputLotIn(Strict):
    gtin: Gtin
    lot_number: Code
    material: Text
    expires_on: date
    retest_on: date | None = None


class FormulateIn(Strict):
    batch_number: Code
    product: Text
    location_id: UUID
    inputs: Annotated[list[LotQuantityIn], Field(min_length=1, max_length=100)]
    output: OutputLotIn
    theoretical_yield: QuantityIn
    actual_yield: QuantityIn
    equipment: Annotated[list[Text], Field(max_length=100)] = []
    checked_by: CheckerIn
    occurred_at: When = None


class DeviationIn(Strict):
    number: Code
    description: LongText
    classification: Literal["minor", "major", "critical"]
    occurred_at: When = None


# --- packaging and release --------------------------------------------------------------------------


class ArmIn(Strict):
    treatment: Code
    dp_lot_id: UUID
    units_per_kit: Annotated[int, Field(ge=1, le=10_000)]
    units_issued: Units
    samples: Units = 0
    rejects: Units = 0


class KitListEntry(Strict):
    kit_number: Code
    treatment: Code


class PackageIn(Strict):
    batch_number: Code
    trial_id: UUID
    location_id: UUID
    kit_gtin: Gtin
    label_version: Code
    arms: Annotated[list[ArmIn], Field(min_length=1, max_length=20)]
    kit_list: Annotated[list[KitListEntry], Field(min_length=1, max_length=MAX_KITS)]
    components: Annotated[list[LotQuantityIn], Field(max_length=100)] = []
    checked_by: CheckerIn
    occurred_at: When = None


class DispositionIn(Strict):
    released: bool
    signature: SignatureIn
    reason: LongText | None = None
    occurred_at: When = None


class CertifyIn(Strict):
    signature: SignatureIn
    occurred_at: When = None


class SponsorReleaseIn(Strict):
    country: Country
    signature: SignatureIn
    occurred_at: When = None


class ExtendExpiryIn(Strict):
    new_expiry: date
    signature: SignatureIn
    reason: LongText
    occurred_at: When = None


# --- distribution and sites -----------------------------------------------------------------------------


class ShipIn(Strict):
    shipment_number: Code
    sscc: Sscc
    from_id: UUID
    to_id: UUID
    kit_ids: KitIds
    min_celsius: Celsius
    max_celsius: Celsius
    logger_id: Code | None = None
    carrier: Text | None = None
    occurred_at: When = None


class SiteSignatureIn(Strict):
    """The site's own Ed25519 signature over the confirmation (docs/api.md, "Site-signed receipts")."""

    key_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]
    nonce: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{16,128}$")]
    signature: Annotated[
        str, StringConstraints(min_length=86, max_length=88), Field(description="base64 of 64 bytes")
    ]


class ReceiptIn(Strict):
    """The site's receipt: every kit number of the shipment with what arrived."""

    outcomes: Annotated[
        dict[Code, Literal["received", "damaged", "missing"]], Field(min_length=1, max_length=MAX_KITS)
    ]
    logger_min: Celsius | None = None
    logger_max: Celsius | None = None
    occurred_at: When = None
    site_signature: SiteSignatureIn | None = None


class SiteKeyIn(Strict):
    """A clinical site's Ed25519 public key: 32 bytes, base64."""

    public_key: Annotated[str, StringConstraints(min_length=44, max_length=44)]
    occurred_at: When = None


class ExcursionIn(Strict):
    kit_ids: KitIds
    min_celsius: Celsius
    max_celsius: Celsius
    duration_minutes: Annotated[int, Field(ge=1, le=525_600)]
    occurred_at: When = None


class QuarantineDecisionIn(Strict):
    kit_ids: KitIds
    release: bool
    signature: SignatureIn
    reason: LongText
    occurred_at: When = None


class DispenseIn(Strict):
    subject: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    occurred_at: When = None


class ReturnIn(Strict):
    condition: Literal["used", "unused", "partially_used"]
    occurred_at: When = None


class AuthoriseDestructionIn(Strict):
    kit_ids: KitIds
    signature: SignatureIn
    reason: LongText
    occurred_at: When = None


class DestroyIn(Strict):
    kit_ids: KitIds
    certificate: Code
    method: Text
    occurred_at: When = None
