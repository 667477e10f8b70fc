"""Plain answers shared by several read models: lots, places and kit counts as frozen dataclasses.

Queries return these (never rows or aggregates); every top-level answer carries `as_of`, the last
event position its read model had applied when the answer was read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID


@dataclass(frozen=True, slots=True)
class LotRef:
    """A material lot as a trace shows it."""

    id: UUID
    gtin: str
    lot_number: str
    kind: str
    material: str
    status: str
    expires_on: date

    @classmethod
    def of(cls, row: Mapping[Any, Any]) -> LotRef:
        return cls(row["lot_id"], row["gtin"], row["lot_number"], row["kind"], row["material"],
                   row["status"], row["expires_on"])


@dataclass(frozen=True, slots=True)
class LocationRef:
    """A manufacturing site, depot or clinical site."""

    id: UUID
    gln: str
    name: str
    kind: str
    country: str
    site_number: str | None

    @classmethod
    def of(cls, row: Mapping[Any, Any]) -> LocationRef:
        return cls(row["location_id"], row["gln"], row["name"], row["kind"], row["country"],
                   row["site_number"])


@dataclass(frozen=True, slots=True)
class PlaceKits:
    """How many kits one place holds (or is accountable for), by status and by recall class."""

    place: LocationRef
    total: int
    by_status: dict[str, int]
    by_class: dict[str, int]


def group_by_place(rows: Iterable[Any], places: Mapping[UUID, LocationRef]) -> tuple[PlaceKits, ...]:
    """Count rows (place_id, status, status_class, n) as kits per place; places with none left out."""
    counts: dict[UUID, tuple[dict[str, int], dict[str, int]]] = {}
    for place_id, status, status_class, n in rows:
        if not n:
            continue
        statuses, classes = counts.setdefault(place_id, ({}, {}))
        statuses[status] = statuses.get(status, 0) + int(n)
        classes[status_class] = classes.get(status_class, 0) + int(n)
    found = [
        PlaceKits(places[p], sum(s.values()), dict(sorted(s.items())), dict(sorted(c.items())))
        for p, (s, c) in counts.items()
    ]
    return tuple(sorted(found, key=lambda pk: (pk.place.kind, pk.place.name)))


ACCOUNTABILITY_OUTCOMES = (
    "in_transit",
    "missing",
    "on_hand",
    "damaged",
    "returned_by_subject",
    "dispensed",
    "destroyed",
    "sent_back",
)
"""What became of each kit delivered to a site, one outcome per kit: still on its way, never arrived,
held there (received, quarantined or awaiting destruction), damaged, brought back by its subject,
dispensed, destroyed there, or sent back to a depot (under a recall or a routine return)."""


@dataclass(frozen=True, slots=True)
class AccountedKit:
    """One kit shipped to the site: its shipment, its status now and what that means for the site."""

    kit_id: UUID
    kit_number: str
    shipment_number: str
    shipped_at: str
    received_at: str | None
    status: str
    outcome: str
    subject: str | None
    now_at: LocationRef | None


@dataclass(frozen=True, slots=True)
class Accountability:
    """A site's drug accountability (GCP, 21 CFR 312.57-62, EU Annex 13): every kit delivered and
    what became of it; `counts` per outcome add up to `delivered`."""

    site: LocationRef
    delivered: int
    received: int
    counts: dict[str, int]
    kits: tuple[AccountedKit, ...]
    as_of: int
