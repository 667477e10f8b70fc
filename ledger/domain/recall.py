"""Recall campaigns: from suspect lots to every affected kit accounted for, site by site.

Opening a recall records the affected set as the genealogy showed it at that moment (kits grouped by
place, GTIN and status, so that later answers can say what was known when), the shipments then in
transit, and the places to notify. Sites acknowledge and report each kit (quarantined, returned,
already dispensed to a subject); the depot records returns received; QA justifies each kit that
cannot be found and closes the recall with a signature once every kit is accounted for (`ACCOUNTED`:
back at a depot, destroyed, dispensed, or justified; quarantined at a site is not the end).

Kits move with the campaign: a kit a site reports `returned` is sent back to the depot that shipped
it (its custody moves, `Kit.ReturnShipped`), the depot's receipt puts it in the depot's hands
(`Kit.ReturnReceived`), and its destruction there, once QA has authorised it, is recorded in the
recall as the kit's final outcome; a site may also destroy the kits it quarantined, on site, through
the recall. A kit of an open recall is destroyed through the recall only.

Blinded by construction: a packaging run reached by a suspect lot is affected as a whole (every
arm), so a site's list never tells which of its kits hold the suspect material.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.base import LedgerAggregate, stable_id
from ledger.domain.kit import Kit
from ledger.errors import InvalidInput, InvalidTransition, KitNotInRecall, RecallOutstanding, RecallWrongPlace


class RecallClass(StrEnum):
    """Health-hazard classification (FDA 21 CFR 7.3(m)): I most serious, III least."""

    CLASS_I = "class_i"
    CLASS_II = "class_ii"
    CLASS_III = "class_iii"


class RecallScope(StrEnum):
    """Which kits downstream of the lots the recall asks for."""

    ALL_KITS = "all_kits"
    UNEXPIRED = "unexpired"
    UNDISPENSED = "undispensed"


class RecallStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class KitOutcome(StrEnum):
    """What became of one affected kit during the recall."""

    QUARANTINED = "quarantined"
    RETURNED = "returned"
    DISPENSED = "dispensed"
    RECEIVED_AT_DEPOT = "received_at_depot"
    DESTROYED = "destroyed"
    DESTROYED_BEFORE = "destroyed_before_recall"
    JUSTIFIED = "justified"
    LOCATED = "located"


SITE_OUTCOMES = (KitOutcome.QUARANTINED, KitOutcome.RETURNED, KitOutcome.DISPENSED)
"""What a site may report for a kit it holds."""

EXERCISE_OUTCOMES = (KitOutcome.LOCATED, KitOutcome.DISPENSED)
"""What a place reports in a mock recall (an exercise that moves no stock): the kit is located, held
there; or it was dispensed, to a named subject."""

EXERCISE_ACCOUNTED = frozenset(
    {KitOutcome.LOCATED, KitOutcome.DISPENSED, KitOutcome.DESTROYED_BEFORE, KitOutcome.JUSTIFIED}
)
"""In an exercise a kit is accounted for once located, known dispensed or destroyed, or justified."""

ACCOUNTED = frozenset(
    {
        KitOutcome.DISPENSED,
        KitOutcome.RECEIVED_AT_DEPOT,
        KitOutcome.DESTROYED,
        KitOutcome.DESTROYED_BEFORE,
        KitOutcome.JUSTIFIED,
    }
)
"""Outcomes that account for a kit wherever it was (EU GMP chapter 8: what was delivered against what
was recovered): back at the depot, destroyed with a certificate, dispensed to a named subject, or
covered by QA's signed justification. A kit reported `returned` is on its way back: accounted once the
depot records it received. A kit `quarantined` is accounted where a depot holds it (the sponsor's own
stock); quarantined at a site it is held, not recovered: it still has to come back or be destroyed."""

UNLOCATED = ""
"""The place key of kits whose place is unknown when the recall opens (none recorded)."""

DESTROYABLE_FROM = (None, KitOutcome.QUARANTINED, KitOutcome.RECEIVED_AT_DEPOT)
"""The outcomes (None: not yet reported) after which the depot may record a kit destroyed."""


@dataclass(frozen=True, slots=True)
class KitReport:
    """One line of a place's report: a kit and what became of it (with the subject when dispensed)."""

    kit_id: UUID
    outcome: KitOutcome
    subject: str | None = None


@dataclass(frozen=True, slots=True)
class KitState:
    """What the opening of a recall needs to know of one kit at that moment."""

    kit_id: UUID
    gtin: str
    kit_number: str
    status: str
    place_id: UUID | None
    shipment_id: UUID | None
    expires_on: date


@dataclass(frozen=True, slots=True)
class AffectedKit:
    """One kit of the recorded affected set: its number, where and in what status it was at opening."""

    kit_id: UUID
    kit_number: str
    place: str
    status_at_open: str


def in_scope(kit: KitState, scope: RecallScope, on: date) -> bool:
    """Whether `kit` falls within the recall's scope on day `on`."""
    if scope == RecallScope.UNEXPIRED:
        return kit.expires_on >= on
    if scope == RecallScope.UNDISPENSED:
        return kit.status != "dispensed"
    return True


def group_kits(kits: Iterable[KitState]) -> list[dict[str, Any]]:
    """The affected kits as compact groups {place_id, gtin, status, kit_numbers}, in a stable order."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    for k in kits:
        key = (str(k.place_id) if k.place_id else UNLOCATED, k.gtin, k.status)
        groups.setdefault(key, []).append(k.kit_number)
    return [
        {"place_id": p, "gtin": g, "status": s, "kit_numbers": sorted(numbers)}
        for (p, g, s), numbers in sorted(groups.items())
    ]


class Recall(LedgerAggregate):
    """One recall campaign, identified by its recall number."""

    @staticmethod
    def create_id(recall_number: str, **_: Any) -> UUID:
        return stable_id("recall", recall_number)

    class Opened(LedgerAggregate.Created):
        """QA opened the recall, signed: the suspect lots and the affected set as known at that moment.
        Version 2 added `suspect_runs`: packaging runs recalled themselves (a labelling error); version
        3 `exercise`: a mock recall, which records the affected set and the places' tasks but recalls
        no lot or run, so no stock is blocked."""

        class_version = 3

        recall_number: str
        audit: dict[str, Any]
        signature: dict[str, str]
        lots: list[dict[str, str]]
        suspect_runs: list[dict[str, str]]
        classification: str
        scope: str
        runs: list[dict[str, str]]
        places: dict[str, dict[str, str]]
        kit_groups: list[dict[str, Any]]
        shipments_in_transit: list[dict[str, Any]]
        source: dict[str, Any]
        exercise: bool

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Recalls opened before runs could be recalled named suspect lots only."""
            state["suspect_runs"] = []

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            """Recalls opened before mock recalls were real ones."""
            state["exercise"] = False

    @event(Opened)
    def __init__(
        self,
        recall_number: str,
        audit: dict[str, Any],
        signature: dict[str, str],
        lots: list[dict[str, str]],
        suspect_runs: list[dict[str, str]],
        classification: str,
        scope: str,
        runs: list[dict[str, str]],
        places: dict[str, dict[str, str]],
        kit_groups: list[dict[str, Any]],
        shipments_in_transit: list[dict[str, Any]],
        source: dict[str, Any],
        exercise: bool = False,
    ) -> None:
        self.recall_number = recall_number
        self.exercise = exercise
        self.reason = audit.get("reason", "")
        self.opened_at = audit["occurred_at"]
        self.opened_by = {**signature}
        self.lots = lots
        self.suspect_runs = suspect_runs
        self.classification = RecallClass(classification)
        self.scope = RecallScope(scope)
        self.runs = runs
        self.places = places
        self.shipments_in_transit = shipments_in_transit
        self.source = source
        self.status = RecallStatus.OPEN
        self.kits: dict[UUID, AffectedKit] = {}
        self.outcomes: dict[UUID, dict[str, Any]] = {}
        self.acknowledged: dict[str, dict[str, str]] = {}
        self.justifications: dict[UUID, dict[str, Any]] = {}
        self.per_place: dict[str, dict[str, int]] = {
            p: {"kits": 0, "reported": 0, "accounted": 0} for p in places
        }
        self.per_place.setdefault(UNLOCATED, {"kits": 0, "reported": 0, "accounted": 0})
        self.by_outcome: dict[str, int] = {}
        self.located: dict[str, str] = {}
        self.reconciled_at: str | None = None
        self.closed: dict[str, Any] | None = None
        self.timeline: list[dict[str, Any]] = [_moment("opened", audit)]
        for g in kit_groups:
            for number in g["kit_numbers"]:
                kit_id = Kit.create_id(g["gtin"], number)
                self.kits[kit_id] = AffectedKit(kit_id, number, g["place_id"], g["status"])
                self.per_place[g["place_id"]]["kits"] += 1
                if g["status"] == "destroyed":
                    self._mark(kit_id, {"outcome": str(KitOutcome.DESTROYED_BEFORE)}, audit)
        self.by_number = sorted(self.kits.values(), key=lambda k: k.kit_number)
        self._check_reconciled(audit)
        self._touch(audit)

    # --- queries ---------------------------------------------------------------------------------

    def outstanding(self, place: str | None = None) -> list[AffectedKit]:
        """Affected kits not yet accounted for (at `place` only, when given), by kit number."""
        return [
            k
            for k in self.by_number
            if (place is None or k.place == place) and not self.is_accounted(k.kit_id)
        ]

    def is_accounted(self, kit_id: UUID) -> bool:
        o = self.outcomes.get(kit_id)
        return o is not None and self._accounts(kit_id, o["outcome"])

    def _accounts(self, kit_id: UUID, outcome: str) -> bool:
        """Whether `outcome` accounts for the kit (see `ACCOUNTED`; quarantined: only at a depot; in an
        exercise, `EXERCISE_ACCOUNTED`)."""
        if self.exercise:
            return outcome in EXERCISE_ACCOUNTED
        if outcome in ACCOUNTED:
            return True
        place = self.places.get(self.kits[kit_id].place, {})
        return outcome == KitOutcome.QUARANTINED and place.get("kind") == "depot"

    def place_name(self, place: str) -> str:
        """A place of the recall by name (its id when it is not one of the recall's places)."""
        return self.places.get(place, {}).get("name", place or "unlocated")

    def kits_at(self, place: str) -> list[AffectedKit]:
        """The affected kits recorded at `place` when the recall opened, by kit number."""
        return [k for k in self.by_number if k.place == place]

    @property
    def accounted_count(self) -> int:
        return sum(p["accounted"] for p in self.per_place.values())

    def located_at(self, place: str) -> str | None:
        """When the last of the place's kits was accounted for (ISO 8601): its time to locate them, from
        the opening; None while any is outstanding."""
        return self.located.get(place)

    # --- rules -----------------------------------------------------------------------------------

    def require_open(self, action: str) -> None:
        if self.status != RecallStatus.OPEN:
            raise InvalidTransition("recall", self.recall_number, str(self.status), action)

    def require_kit(self, kit_id: UUID) -> AffectedKit:
        kit = self.kits.get(kit_id)
        if kit is None:
            raise KitNotInRecall(self.recall_number, kit_id)
        return kit

    def _require_place(self, place_id: UUID, what: str) -> str:
        place = str(place_id)
        if place not in self.places:
            raise RecallWrongPlace(
                self.recall_number, place_id, f"it holds no kit of this recall; cannot {what}"
            )
        return place

    # --- commands ----------------------------------------------------------------------------------

    def acknowledge(self, audit: dict[str, Any], place_id: UUID) -> None:
        """The place (site or depot) confirms it received the recall notice; once."""
        self.require_open("acknowledge")
        place = self._require_place(place_id, "acknowledge")
        if place in self.acknowledged:
            raise InvalidTransition(
                "recall", self.recall_number, "already acknowledged by this place", "acknowledge"
            )
        self._require_after_last_step(audit, "acknowledgement")
        self._acknowledged(audit, place)

    def check_report(self, audit: dict[str, Any], place_id: UUID, report: KitReport) -> None:
        """Refuse a report on a kit unless the place held it when the recall opened, the outcome is
        one a place may report, and the kit has no outcome yet (or was quarantined there and is now
        sent back: held first, returned once the depot can take it)."""
        self.require_open("report a kit")
        kit = self.require_kit(report.kit_id)
        place = self._require_place(place_id, "report a kit")
        if kit.place != place:
            raise RecallWrongPlace(
                self.recall_number, place_id, f"kit {kit.kit_number} was not recorded there"
            )
        allowed = EXERCISE_OUTCOMES if self.exercise else SITE_OUTCOMES
        if report.outcome not in allowed:
            what = "in a mock recall, which moves no stock, a place" if self.exercise else "a site"
            raise InvalidInput(f"{what} reports {', '.join(allowed)}", field="outcome")
        if (report.outcome == KitOutcome.DISPENSED) != bool(report.subject):
            raise InvalidInput("a dispensed kit is reported with its subject, and only then", field="subject")
        before = self.outcomes.get(report.kit_id, {}).get("outcome")
        if before is not None and (before, report.outcome) != (KitOutcome.QUARANTINED, KitOutcome.RETURNED):
            raise InvalidTransition("recall kit", kit.kit_number, before, f"report {report.outcome}")
        self._require_after_last_step(audit, "kit report")

    def report_kit(self, audit: dict[str, Any], place_id: UUID, report: KitReport) -> None:
        """A site's (or depot's) report on one kit it held when the recall opened."""
        self.check_report(audit, place_id, report)
        self._kit_reported(audit, report.kit_id, str(report.outcome), report.subject)

    def require_real(self, action: str) -> None:
        """A mock recall moves no stock: no kit is returned or destroyed under it."""
        if self.exercise:
            raise InvalidTransition("recall", self.recall_number, "an exercise (mock recall)", action)

    def check_return(self, audit: dict[str, Any], kit_id: UUID) -> None:
        """Refuse a return receipt unless the kit is one a place reported returned."""
        self.require_open("receive a return")
        self.require_real("receive a return")
        kit = self.require_kit(kit_id)
        outcome = self.outcomes.get(kit_id, {}).get("outcome", "unreported")
        if outcome != KitOutcome.RETURNED:
            raise InvalidTransition("recall kit", kit.kit_number, outcome, "receive as a return")
        self._require_after_last_step(audit, "return receipt")

    def receive_return(self, audit: dict[str, Any], depot_id: UUID, kit_id: UUID) -> None:
        """The depot received a kit a site reported returned."""
        self.check_return(audit, kit_id)
        self._return_received(audit, depot_id, kit_id)

    def check_destroyed(self, audit: dict[str, Any], kit_id: UUID) -> None:
        """Refuse to record a destruction unless the kit is unreported, quarantined or back at the
        depot (not dispensed, not on its way back, not justified or already destroyed)."""
        self.require_open("record a destruction")
        self.require_real("record a destruction")
        kit = self.require_kit(kit_id)
        outcome = self.outcomes.get(kit_id, {}).get("outcome")
        if outcome not in DESTROYABLE_FROM:
            raise InvalidTransition("recall kit", kit.kit_number, str(outcome), "record as destroyed")
        self._require_after_last_step(audit, "destruction")

    def record_destroyed(
        self, audit: dict[str, Any], place_id: UUID, kit_id: UUID, certificate: str, method: str
    ) -> None:
        """The place holding a kit of the recall destroyed it: the depot it was returned to, or where it
        is quarantined (a depot, or a site destroying on site under QA's authorisation)."""
        self.check_destroyed(audit, kit_id)
        self._kit_destroyed(audit, place_id, kit_id, certificate, method)

    def kit_number(self, kit_id: UUID) -> str:
        """The kit's number when it is in the recall, else its id (for messages)."""
        kit = self.kits.get(kit_id)
        return kit.kit_number if kit else str(kit_id)

    def justify(
        self, audit: dict[str, Any], signature: dict[str, str], kit_id: UUID, justification: str
    ) -> None:
        """QA's signed justification for a kit that cannot be accounted for."""
        self.require_open("justify a kit")
        kit = self.require_kit(kit_id)
        if self.is_accounted(kit_id):
            raise InvalidTransition("recall kit", kit.kit_number, "accounted for", "justify")
        if not justification.strip():
            raise InvalidInput(
                "a justification states why the kit cannot be accounted for", field="justification"
            )
        self._require_after_last_step(audit, "justification")
        self._justified(audit, signature, kit_id, justification.strip())

    def close(self, audit: dict[str, Any], signature: dict[str, str]) -> None:
        """QA closes the recall: only when every affected kit is accounted for or justified."""
        self.require_open("close")
        missing = self.outstanding()
        if missing:
            places: dict[str, int] = {}
            for k in missing:
                name = self.place_name(k.place)
                places[name] = places.get(name, 0) + 1
            raise RecallOutstanding(self.recall_number, [k.kit_number for k in missing], places)
        self._require_after_last_step(audit, "closure")
        self._closed(audit, signature)

    # --- events ------------------------------------------------------------------------------------

    class Acknowledged(Aggregate.Event):
        """A place (its id as text) confirmed it received the recall notice."""

        audit: dict[str, Any]
        place_id: str

    @event(Acknowledged)
    def _acknowledged(self, audit: dict[str, Any], place_id: str) -> None:
        self.acknowledged[place_id] = {"at": audit["occurred_at"], "by": audit["name"]}
        self.timeline.append(_moment("acknowledged", audit, place_id=place_id))
        self._touch(audit)

    class KitReported(Aggregate.Event):
        """A place reported what became of one affected kit (with the subject when dispensed)."""

        audit: dict[str, Any]
        kit_id: UUID
        outcome: str
        subject: str | None

    @event(KitReported)
    def _kit_reported(self, audit: dict[str, Any], kit_id: UUID, outcome: str, subject: str | None) -> None:
        record = {"outcome": outcome, "by": audit["name"]}
        if subject:
            record["subject"] = subject
        self._mark(kit_id, record, audit)
        self._check_reconciled(audit)
        self._touch(audit)

    class ReturnReceived(Aggregate.Event):
        """The depot received an affected kit a place reported returned."""

        audit: dict[str, Any]
        depot_id: UUID
        kit_id: UUID

    @event(ReturnReceived)
    def _return_received(self, audit: dict[str, Any], depot_id: UUID, kit_id: UUID) -> None:
        record = {
            **self.outcomes[kit_id],
            "outcome": str(KitOutcome.RECEIVED_AT_DEPOT),
            "depot_id": str(depot_id),
            "received_by": audit["name"],
        }
        self._mark(kit_id, record, audit)
        self._check_reconciled(audit)
        self._touch(audit)

    class KitDestroyed(Aggregate.Event):
        """The place holding an affected kit destroyed it, under a destruction certificate. Version 2
        named the place `place_id` (a depot, or a site): version 1 called it `depot_id`."""

        class_version = 2

        audit: dict[str, Any]
        place_id: UUID
        kit_id: UUID
        certificate: str
        method: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Only depots destroyed recalled kits then: the place is the depot."""
            state["place_id"] = state.pop("depot_id")

    @event(KitDestroyed)
    def _kit_destroyed(
        self, audit: dict[str, Any], place_id: UUID, kit_id: UUID, certificate: str, method: str
    ) -> None:
        record = {
            **self.outcomes.get(kit_id, {}),
            "outcome": str(KitOutcome.DESTROYED),
            "place_id": str(place_id),
            "certificate": certificate,
            "method": method,
            "destroyed_by": audit["name"],
        }
        self._mark(kit_id, record, audit)
        self._check_reconciled(audit)
        self._touch(audit)

    class KitJustified(Aggregate.Event):
        """QA's signed justification for an affected kit that cannot be accounted for."""

        audit: dict[str, Any]
        signature: dict[str, str]
        kit_id: UUID
        justification: str

    @event(KitJustified)
    def _justified(
        self, audit: dict[str, Any], signature: dict[str, str], kit_id: UUID, justification: str
    ) -> None:
        self.justifications[kit_id] = {
            "justification": justification,
            "signature": signature,
            "was": self.outcomes.get(kit_id, {}).get("outcome"),
        }
        self._mark(kit_id, {"outcome": str(KitOutcome.JUSTIFIED), "by": audit["name"]}, audit)
        self.timeline.append(_moment("justified", audit, kit_number=self.kits[kit_id].kit_number))
        self._check_reconciled(audit)
        self._touch(audit)

    class Closed(Aggregate.Event):
        """QA closed the recall, signed, once every affected kit was accounted for or justified."""

        audit: dict[str, Any]
        signature: dict[str, str]

    @event(Closed)
    def _closed(self, audit: dict[str, Any], signature: dict[str, str]) -> None:
        self.status = RecallStatus.CLOSED
        self.closed = {"at": audit["occurred_at"], "signature": signature}
        self.timeline.append(_moment("closed", audit))
        self._touch(audit)

    # --- state helpers (called from events only) ----------------------------------------------------

    def _mark(self, kit_id: UUID, record: dict[str, Any], audit: dict[str, Any]) -> None:
        """Set a kit's outcome and keep the per-place counters in step."""
        counts = self.per_place[self.kits[kit_id].place]
        before = self.outcomes.get(kit_id)
        if before is None:
            counts["reported"] += 1
        else:
            self.by_outcome[before["outcome"]] -= 1
            if not self.by_outcome[before["outcome"]]:
                del self.by_outcome[before["outcome"]]
            if self._accounts(kit_id, before["outcome"]):
                counts["accounted"] -= 1
        if self._accounts(kit_id, record["outcome"]):
            counts["accounted"] += 1
        self.by_outcome[record["outcome"]] = self.by_outcome.get(record["outcome"], 0) + 1
        self.outcomes[kit_id] = {**record, "at": audit["occurred_at"]}
        place = self.kits[kit_id].place
        if counts["accounted"] == counts["kits"]:
            self.located.setdefault(place, audit["occurred_at"])
        else:
            self.located.pop(place, None)

    def _check_reconciled(self, audit: dict[str, Any]) -> None:
        if self.reconciled_at is None and self.accounted_count == len(self.kits):
            self.reconciled_at = audit["occurred_at"]
            self.timeline.append(_moment("fully reconciled", audit))


def _moment(what: str, audit: dict[str, Any], **details: str) -> dict[str, Any]:
    return {"what": what, "at": audit["occurred_at"], "by": audit["name"], "role": audit["role"], **details}
