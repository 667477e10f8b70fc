"""Answers of the commands: the new events' chain positions and hashes, the ids a step created and the
facts it found, each made by `Recorded.of` from the ledger's `Recorded`."""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

from api.schemas.common import Recorded


class Created(Recorded):
    """A step that created an aggregate (trial, location, lot, packaging run, shipment, recall): its id."""

    created: ClassVar[tuple[str, ...]] = ("id",)

    id: UUID


class Formulated(Recorded):
    """A formulation: the manufacturing batch and the drug-product lot it produced."""

    created: ClassVar[tuple[str, ...]] = ("batch_id", "dp_lot_id")

    batch_id: UUID
    dp_lot_id: UUID


class ReceiptConfirmed(Recorded):
    """A site receipt; `excursion` when the logger saw temperatures outside the shipping range."""

    excursion: bool


class SiteKeyRegistered(Recorded):
    """A site key: its id (hex, 8 bytes of SHA-256 of the key), which signed receipts name."""

    key_id: str
