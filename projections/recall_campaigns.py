"""Recall campaigns on the read side: the live status of a recall, each place's task list, and the
bulk kit reader a recall is opened with.

The status is computed from the `Recall` aggregate itself, which keeps its per-place counters as its
events are applied (the ledger's read-only view is cached per process and brought up to date with
only the newer events), so a status answer is O(places) and exactly as fresh as the ledger. The kit
reader reads the genealogy's kit table in one pass, so opening a recall of ~50,000 kits does not
load 50,000 aggregates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any
from uuid import UUID

from sqlalchemy import Engine

from ledger.domain.recall import UNLOCATED, AffectedKit, KitState, Recall
from projections import genealogy as gen
from projections.base import positions
from projections.db import reading, select_in


@dataclass(frozen=True, slots=True)
class PlaceStatus:
    """One place of a recall: its kits and how far it has got."""

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
    located_at: str | None = None
    """When the last of its kits was accounted for (located, in a mock recall); None while any is not."""
    seconds_to_locate: float | None = None
    """From the recall's opening to `located_at`: the place's time to locate its kits."""


@dataclass(frozen=True, slots=True)
class RecallStatusView:
    """The live status of a recall, overall and per place."""

    recall_id: UUID
    recall_number: str
    status: str
    classification: str
    scope: str
    reason: str
    lots: tuple[dict[str, str], ...]
    suspect_runs: tuple[dict[str, str], ...]
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
    shipments_in_transit: tuple[dict[str, Any], ...]
    places: tuple[PlaceStatus, ...]
    version: int
    exercise: bool = False
    """A mock recall: nothing was recalled or blocked; `seconds_to_reconciliation` is its time to
    locate every affected kit."""


@dataclass(frozen=True, slots=True)
class TaskKit:
    """One kit on a place's task list: blinded (number and what is known of it, never its arm)."""

    kit_id: UUID
    kit_number: str
    status_at_open: str
    outcome: str | None
    subject: str | None
    reported_at: str | None


def percent(part: int, whole: int) -> float:
    """`part` of `whole` in percent, one decimal; 100 for an empty whole (nothing left to do)."""
    return 100.0 if whole == 0 else round(100.0 * part / whole, 1)


def status(recall: Recall) -> RecallStatusView:
    """The recall's counts and percentages per place and overall, and its time to reconciliation."""
    places = tuple(sorted((place_status(recall, p) for p in _places(recall)), key=lambda p: (p.kind, p.name)))
    kits = len(recall.kits)
    reported = sum(c["reported"] for c in recall.per_place.values())
    reconciled = recall.accounted_count
    notified = len(recall.places)
    acked = len(recall.acknowledged)
    return RecallStatusView(
        recall.id,
        recall.recall_number,
        str(recall.status),
        str(recall.classification),
        str(recall.scope),
        recall.reason,
        tuple(recall.lots),
        tuple(recall.suspect_runs),
        recall.opened_at,
        notified,
        acked,
        percent(acked, notified),
        kits,
        reported,
        reconciled,
        kits - reconciled,
        percent(reconciled, kits),
        recall.reconciled_at,
        _seconds(recall.opened_at, recall.reconciled_at),
        recall.closed["at"] if recall.closed else None,
        dict(sorted(recall.by_outcome.items())),
        tuple(recall.shipments_in_transit),
        places,
        recall.version,
        recall.exercise,
    )


def _places(recall: Recall) -> list[str]:
    """The recall's places, and the unlocated group when it holds kits."""
    found = list(recall.places)
    if recall.per_place.get(UNLOCATED, {}).get("kits"):
        found.append(UNLOCATED)
    return found


def place_status(recall: Recall, place: str) -> PlaceStatus:
    """One place of the recall: its kits, how far it has got, its time to locate them."""
    info = recall.places.get(place, {"name": "place unknown", "kind": "", "country": ""})
    counts = recall.per_place[place]
    ack = recall.acknowledged.get(place)
    return PlaceStatus(
        place,
        info["name"],
        info["kind"],
        info["country"],
        ack["at"] if ack else None,
        counts["kits"],
        counts["reported"],
        counts["accounted"],
        counts["kits"] - counts["accounted"],
        percent(counts["accounted"], counts["kits"]),
        recall.located_at(place),
        _seconds(recall.opened_at, recall.located_at(place)),
    )


def _seconds(start: str, end: str | None) -> float | None:
    if end is None:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def task_list(recall: Recall, place_id: UUID | str) -> tuple[TaskKit, ...]:
    """The kits a place must act on, by kit number, with what it has reported so far."""
    return tuple(_task(recall, k) for k in recall.kits_at(str(place_id)))


def outstanding(recall: Recall, place_id: UUID | str | None = None) -> tuple[TaskKit, ...]:
    """Kits not yet accounted for, overall or at one place, by kit number."""
    return tuple(_task(recall, k) for k in recall.outstanding(None if place_id is None else str(place_id)))


def outstanding_page(
    recall: Recall, place_id: UUID | str | None, limit: int, offset: int
) -> tuple[int, tuple[TaskKit, ...]]:
    """One page of the outstanding kits and their total, without listing them all (the total comes
    from the recall's counters)."""
    place = None if place_id is None else str(place_id)
    if place is None:
        total = len(recall.kits) - recall.accounted_count
    else:
        counts = recall.per_place.get(place, {"kits": 0, "accounted": 0})
        total = counts["kits"] - counts["accounted"]
    found = (
        k
        for k in recall.by_number
        if (place is None or k.place == place) and not recall.is_accounted(k.kit_id)
    )
    return total, tuple(_task(recall, k) for k in islice(found, offset, offset + limit))


def _task(recall: Recall, kit: AffectedKit) -> TaskKit:
    o = recall.outcomes.get(kit.kit_id) or {}
    return TaskKit(
        kit.kit_id, kit.kit_number, kit.status_at_open, o.get("outcome"), o.get("subject"), o.get("at")
    )


class KitStateReader:
    """Bulk reads of kits' current status and place from the genealogy's kit table."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.as_of = 0

    def __call__(self, kit_ids: Sequence[UUID]) -> dict[UUID, KitState]:
        """Each kit's state, as of the genealogy's position (kept in `as_of`)."""
        with reading(self.engine) as conn:
            self.as_of = positions(conn, [gen.Genealogy.name])[gen.Genealogy.name]
            rows = select_in(conn, gen.kit, "kit_id", set(kit_ids))
            return {
                r["kit_id"]: KitState(
                    r["kit_id"],
                    r["gtin"],
                    r["kit_number"],
                    r["status"],
                    r["place_id"],
                    r["shipment_id"],
                    r["expires_on"],
                )
                for r in rows
            }
