"""Site-signed receipt confirmations: a site's Ed25519 key and the exact message it signs.

A site registers an Ed25519 public key with the ledger (`Location.SiteKeyRegistered`); a receipt
confirmation may then carry the site's signature over `receipt_message(...)`, which the ledger
verifies before it records anything and keeps in `Shipment.ReceiptConfirmed`. The message binds the
shipment, the site, every kit's outcome, the logger readings, the event time and a nonce, so a
signature is good for one confirmation only. Format: docs/api.md, "Site-signed receipts".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger.errors import InvalidInput, SiteSignatureRefused

RECEIPT_CONTEXT = "lotline-receipt/v1"
"""The first member of every signed receipt message: what is signed, and in which format version."""

NONCE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")


@dataclass(frozen=True, slots=True)
class SiteSignature:
    """A site's signature over one receipt confirmation: key, nonce and base64 Ed25519 signature."""

    key_id: str
    nonce: str
    signature: str

    def as_dict(self) -> dict[str, str]:
        return {"key_id": self.key_id, "nonce": self.nonce, "signature": self.signature}


def site_key_id(public_key: bytes) -> str:
    """The id of a site key: the first 8 bytes of SHA-256 of the 32-byte public key, in hex."""
    return hashlib.sha256(public_key).digest()[:8].hex()


def parse_public_key(public_key_b64: str) -> bytes:
    """The 32 raw bytes of a base64 Ed25519 public key (InvalidInput otherwise)."""
    raw = _b64(public_key_b64, "public_key")
    if len(raw) != 32:
        raise InvalidInput("an Ed25519 public key is 32 bytes (base64)", field="public_key")
    try:
        Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise InvalidInput("not an Ed25519 public key", field="public_key") from None
    return raw


def decimal_text(value: Decimal | None) -> str | None:
    """A logger reading as signed: plain notation, no exponent, no trailing zeros (`3`, `-0.5`)."""
    if value is None:
        return None
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def receipt_message(
    *,
    shipment_id: UUID,
    site_id: UUID,
    outcomes: Mapping[str, str],
    logger_min: Decimal | None,
    logger_max: Decimal | None,
    occurred_at: str,
    nonce: str,
    remarks: Mapping[str, str] | None = None,
) -> bytes:
    """The bytes a site signs: canonical JSON (sorted keys, no whitespace, UTF-8) of the confirmation;
    `remarks` on damaged or missing kits are part of it when there are any."""
    doc: dict[str, Any] = {
        "context": RECEIPT_CONTEXT,
        "shipment_id": str(shipment_id),
        "site_id": str(site_id),
        "outcomes": {str(k): str(v) for k, v in outcomes.items()},
        "logger_min": decimal_text(logger_min),
        "logger_max": decimal_text(logger_max),
        "occurred_at": occurred_at,
        "nonce": nonce,
    }
    if remarks:
        doc["remarks"] = {str(k): str(v) for k, v in remarks.items()}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def require_nonce(nonce: str) -> str:
    """A nonce is 16-128 characters of the base64url alphabet (e.g. 16 random bytes, base64url)."""
    if not NONCE.match(nonce):
        raise InvalidInput("nonce: 16-128 characters of A-Z a-z 0-9 - _", field="site_signature.nonce")
    return nonce


def verify_site_signature(
    public_key: bytes, signature: SiteSignature, message: bytes, *, shipment: str, site_id: UUID
) -> None:
    """SiteSignatureRefused unless `signature` is the key's Ed25519 signature over `message`."""
    try:
        raw = base64.b64decode(signature.signature, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    try:
        if len(raw) != 64:
            raise InvalidSignature
        Ed25519PublicKey.from_public_bytes(public_key).verify(raw, message)
    except InvalidSignature:
        raise SiteSignatureRefused(
            shipment,
            site_id,
            signature.key_id,
            "the signature does not verify over this confirmation with the site's key "
            "(forged, made for another confirmation, or over other data)",
        ) from None


def _b64(text: str, field: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"{field} is not base64", field=field) from None
