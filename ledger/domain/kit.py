"""Patient kits: one place and one status at a time, from commissioning to dispensing or destruction."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.base import LedgerAggregate, stable_id
from ledger.domain.whereabouts import (
    KitStatus,
    ReceiptOutcome,
    commissioned,
    destroyed,
    destruction_authorised,
    dispensed,
    quarantine_rejected,
    quarantine_released,
    quarantined,
    received,
    relabelled,
    return_received,
    return_shipped,
    returned,
    shipped,
)
from ledger.errors import InvalidInput, KitNotUsable

# Statuses from which destruction may be authorised: nothing still travelling or in a subject's hands.
# QA's signed authorisation is itself the decision on a quarantined kit (e.g. one held for a recall).
DESTROYABLE = {
    KitStatus.RETURNED,
    KitStatus.DAMAGED,
    KitStatus.AVAILABLE,
    KitStatus.RECEIVED,
    KitStatus.QUARANTINED,
}

RETURN_CONDITIONS = ("used", "unused", "partially_used")

RELABELLABLE = (KitStatus.AVAILABLE, KitStatus.RECEIVED, KitStatus.QUARANTINED)
"""Kits still in the supply chain (not travelling, not used up, not destroyed): an expiry extension
relabels them."""

IN_SUPPLY = (KitStatus.AVAILABLE, KitStatus.IN_TRANSIT, KitStatus.RECEIVED, KitStatus.QUARANTINED)
"""Kits that could still reach a subject (stock and supply counts). Narrower is `RELABELLABLE`: an expiry
extension relabels only kits in someone's hands, not those travelling."""

RECALL_QUARANTINABLE = (KitStatus.AVAILABLE, KitStatus.RECEIVED, KitStatus.RETURNED, KitStatus.DAMAGED)
"""Statuses of a kit a place holds that a recall puts in quarantine (others are already held back)."""


class Kit(LedgerAggregate):
    """A blinded kit, GTIN + serial (the kit number). It carries no treatment and no drug-product lot."""

    @staticmethod
    def create_id(gtin: str, kit_number: str, **_: Any) -> UUID:
        return stable_id("kit", gtin, kit_number)

    class Commissioned(LedgerAggregate.Created):
        """The kit was commissioned by a packaging run: GTIN + kit number, label, expiry and place."""

        gtin: str
        kit_number: str
        audit: dict[str, Any]
        trial_id: UUID
        packaging_run_id: UUID
        batch_number: str
        label_version: str
        expires_on: date
        location_id: UUID

    @event(Commissioned)
    def __init__(
        self,
        gtin: str,
        kit_number: str,
        audit: dict[str, Any],
        trial_id: UUID,
        packaging_run_id: UUID,
        batch_number: str,
        label_version: str,
        expires_on: date,
        location_id: UUID,
    ) -> None:
        self.gtin = gtin
        self.kit_number = kit_number
        self.trial_id = trial_id
        self.packaging_run_id = packaging_run_id
        self.batch_number = batch_number
        self.label_version = label_version
        self.expires_on = expires_on
        self.status: str = KitStatus.AVAILABLE
        self.held_status: str | None = None
        self.location_id: UUID | None = location_id
        self.place_id: UUID | None = location_id
        self.shipment_id: UUID | None = None
        self.subject: str | None = None
        self.returning_from: UUID | None = None
        self.recall_number: str | None = None  # the recall campaign that last moved the kit
        self._touch(audit)

    @classmethod
    def commission(cls, gtin: str, kit_number: str, **fields: Any) -> Kit:
        """`Kit(gtin, kit_number, **fields)`, the same event and the same kit, made without the library's
        generic handling of the constructor's arguments (mapping them to the signature, filtering those
        of `create_id`): a packaging run makes hundreds of kits, and that handling was a fifth of making
        each. The event itself refuses a missing or unknown field, as the constructor does."""
        return cls._create(
            cls.Commissioned, id=cls.create_id(gtin, kit_number), gtin=gtin, kit_number=kit_number, **fields
        )

    @property
    def destination_id(self) -> UUID | None:
        """Where the kit travels to, while in transit."""
        return self.place_id if self.status == KitStatus.IN_TRANSIT else None

    @property
    def destroyed_at_id(self) -> UUID | None:
        """Where the kit was destroyed."""
        return self.place_id if self.status == KitStatus.DESTROYED else None

    # --- rules -----------------------------------------------------------------------------------

    def _refuse(self, reason: str, **details: str) -> KitNotUsable:
        return KitNotUsable(self.kit_number, reason, kit_id=str(self.id), status=str(self.status), **details)

    def require_status(self, action: str, *allowed: KitStatus) -> None:
        if self.status not in allowed:
            raise self._refuse(f"is {self.status}; cannot {action}")

    def require_at(self, location_id: UUID, action: str) -> None:
        """The kit is held at `location_id`. Checked before anything else of the kit: the refusal says
        nothing of a kit held elsewhere (its status, its place, a recall), only that it is not here."""
        if self.location_id != location_id:
            raise KitNotUsable(
                self.kit_number, f"is not held at this place; cannot {action}", kit_id=str(self.id)
            )

    def require_held_at(self, location_id: UUID, action: str) -> None:
        """The kit is physically at `location_id` and not in a subject's hands."""
        self.require_at(location_id, action)
        if self.status == KitStatus.DISPENSED:
            raise self._refuse(f"is dispensed to {self.subject}; cannot {action}")

    def require_not_expired_by(self, last_day: date, on: date, window: str) -> None:
        if on > last_day:
            raise self._refuse(
                f"expires {self.expires_on}; the {window} window closed on {last_day}",
                expires_on=str(self.expires_on),
            )

    # --- commands ----------------------------------------------------------------------------------

    def ship(self, audit: dict[str, Any], shipment_id: UUID, from_id: UUID, to_id: UUID) -> None:
        self.require_at(from_id, "ship")
        self.require_status("ship", KitStatus.AVAILABLE)
        self._require_after_last_step(audit, "shipping")
        # `_shipped`'s event, triggered as its decorator does, without the decorator's generic handling
        # of the arguments (mapping them to the signature, filtering them): 40% of shipping a kit, and a
        # shipment ships hundreds. The same event class, fields and apply (`_shipped`'s body).
        self.trigger_event(self.Shipped, audit=audit, shipment_id=shipment_id, from_id=from_id, to_id=to_id)

    def receive(
        self,
        audit: dict[str, Any],
        shipment_id: UUID,
        site_id: UUID,
        outcome: ReceiptOutcome,
        quarantine: bool,
        into_stock: bool = False,
    ) -> None:
        """The place the kit was shipped to receives it; a depot (`into_stock`) takes it into stock."""
        self.require_status("receive", KitStatus.IN_TRANSIT)
        if self.shipment_id != shipment_id or self.destination_id != site_id:
            raise self._refuse("was not shipped to this place in this shipment")
        self._require_after_last_step(audit, "receipt")
        self.trigger_event(  # as `ship` triggers `_shipped`'s event
            self.Received, audit=audit, shipment_id=shipment_id, site_id=site_id, outcome=str(outcome),
            quarantine=quarantine, into_stock=into_stock,
        )

    def quarantine(self, audit: dict[str, Any], excursion: dict[str, Any]) -> None:
        self.require_status("quarantine", KitStatus.AVAILABLE, KitStatus.RECEIVED)
        self._require_after_last_step(audit, "quarantine")
        self._quarantined(audit, excursion)

    def decide_quarantine(self, audit: dict[str, Any], signature: dict[str, str], release: bool) -> None:
        self.require_status("decide quarantine", KitStatus.QUARANTINED)
        self._require_after_last_step(audit, "quarantine decision")
        if release:
            self._released_from_quarantine(audit, signature)
        else:
            self._rejected_from_quarantine(audit, signature)

    def dispense(self, audit: dict[str, Any], site_id: UUID, subject: str) -> None:
        self.require_at(site_id, "dispense")
        self.require_status("dispense", KitStatus.RECEIVED)
        self._require_after_last_step(audit, "dispensing")
        self._dispensed(audit, site_id, subject)

    def return_(self, audit: dict[str, Any], site_id: UUID, condition: str) -> None:
        if condition not in RETURN_CONDITIONS:
            raise InvalidInput("condition is used, unused or partially_used", field="condition")
        self.require_at(site_id, "return")
        self.require_status("return", KitStatus.DISPENSED, KitStatus.RECEIVED)
        self._require_after_last_step(audit, "return")
        self._returned(audit, site_id, condition)

    def quarantine_for_recall(self, audit: dict[str, Any], place_id: UUID, recall_number: str) -> bool:
        """The place holding the kit quarantines it under a recall; False (nothing to record) when the
        kit is already quarantined or awaiting its destruction."""
        self.require_held_at(place_id, "quarantine it for the recall")
        if self.status not in RECALL_QUARANTINABLE:
            return False
        self._require_after_last_step(audit, "recall quarantine")
        self._recall_quarantined(audit, place_id, recall_number)
        return True

    def send_back(
        self, audit: dict[str, Any], site_id: UUID, depot_id: UUID, recall_number: str | None
    ) -> None:
        """The site sends a kit it holds back to a depot: under a recall (to the depot that shipped
        it), or as a routine return (`recall_number` None)."""
        self.require_at(site_id, "send back")
        self.require_status(
            "send back", KitStatus.RECEIVED, KitStatus.QUARANTINED, KitStatus.RETURNED, KitStatus.DAMAGED
        )
        self._require_after_last_step(audit, "sending back")
        self._return_shipped(audit, site_id, depot_id, recall_number)

    def receive_back(self, audit: dict[str, Any], depot_id: UUID) -> None:
        """The depot receives a kit a site sent back: held there, returned, until its destruction."""
        self.require_status("receive back", KitStatus.IN_TRANSIT)
        if self.returning_from is None or self.destination_id != depot_id:
            raise self._refuse("was not sent back to this depot")
        self._require_after_last_step(audit, "receipt of a return")
        self._return_received(audit, depot_id)

    def authorise_destruction(self, audit: dict[str, Any], signature: dict[str, str]) -> None:
        if self.status not in DESTROYABLE:
            raise self._refuse(f"is {self.status}; cannot authorise its destruction")
        self._require_after_last_step(audit, "destruction authorisation")
        self._destruction_authorised(audit, signature)

    def destroy(self, audit: dict[str, Any], location_id: UUID, certificate: str, method: str) -> None:
        """Destroy the kit where it is held, once QA authorised it (the place must hold the kit)."""
        self.require_at(location_id, "destroy")
        self.require_status("destroy", KitStatus.PENDING_DESTRUCTION)
        self._require_after_last_step(audit, "destruction")
        self._destroyed(audit, certificate, method, location_id)

    def relabel(self, audit: dict[str, Any], batch_number: str, new_expiry: date) -> None:
        self.require_status("relabel", *RELABELLABLE)
        self._require_after_last_step(audit, "relabel")
        self._relabelled(audit, batch_number, new_expiry)

    # --- events --------------------------------------------------------------------------------------

    class Shipped(Aggregate.Event):
        """The kit left `from_id` for `to_id` in a shipment."""

        audit: dict[str, Any]
        shipment_id: UUID
        from_id: UUID
        to_id: UUID

    @event(Shipped)
    def _shipped(self, audit: dict[str, Any], shipment_id: UUID, from_id: UUID, to_id: UUID) -> None:
        shipped(self, shipment_id=shipment_id, to_id=to_id)
        self._touch(audit)

    class Received(Aggregate.Event):
        """The place the shipment went to received the kit: received, damaged or missing (maybe
        quarantined). `site_id` names that place. Version 2 added `into_stock`: received by a depot
        (a transfer between depots), the kit is stock again (`available`), not a site's."""

        class_version = 2

        audit: dict[str, Any]
        shipment_id: UUID
        site_id: UUID
        outcome: str
        quarantine: bool
        into_stock: bool

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Only sites received kits then."""
            state["into_stock"] = False

    @event(Received)
    def _received(
        self,
        audit: dict[str, Any],
        shipment_id: UUID,
        site_id: UUID,
        outcome: str,
        quarantine: bool,
        into_stock: bool,
    ) -> None:
        received(self, site_id=site_id, outcome=outcome, quarantine=quarantine, into_stock=into_stock)
        self._touch(audit)

    class Quarantined(Aggregate.Event):
        """The kit was quarantined after a temperature excursion."""

        audit: dict[str, Any]
        excursion: dict[str, Any]

    @event(Quarantined)
    def _quarantined(self, audit: dict[str, Any], excursion: dict[str, Any]) -> None:
        quarantined(self)
        self._touch(audit)

    class QuarantineReleased(Aggregate.Event):
        """QA released the kit from quarantine, signed: back to its status before."""

        audit: dict[str, Any]
        signature: dict[str, str]

    @event(QuarantineReleased)
    def _released_from_quarantine(self, audit: dict[str, Any], signature: dict[str, str]) -> None:
        quarantine_released(self)
        self._touch(audit)

    class QuarantineRejected(Aggregate.Event):
        """QA rejected the quarantined kit, signed: it counts as damaged."""

        audit: dict[str, Any]
        signature: dict[str, str]

    @event(QuarantineRejected)
    def _rejected_from_quarantine(self, audit: dict[str, Any], signature: dict[str, str]) -> None:
        quarantine_rejected(self)
        self._touch(audit)

    class Dispensed(Aggregate.Event):
        """The site dispensed the kit to a (pseudonymous) subject."""

        audit: dict[str, Any]
        site_id: UUID
        subject: str

    @event(Dispensed)
    def _dispensed(self, audit: dict[str, Any], site_id: UUID, subject: str) -> None:
        dispensed(self, subject=subject)
        self._touch(audit)

    class Returned(Aggregate.Event):
        """The kit came back to the site: used, unused or partially used."""

        audit: dict[str, Any]
        site_id: UUID
        condition: str

    @event(Returned)
    def _returned(self, audit: dict[str, Any], site_id: UUID, condition: str) -> None:
        returned(self)
        self._touch(audit)

    class RecallQuarantined(Aggregate.Event):
        """The place holding the kit quarantined it under a recall."""

        audit: dict[str, Any]
        place_id: UUID
        recall_number: str

    @event(RecallQuarantined)
    def _recall_quarantined(self, audit: dict[str, Any], place_id: UUID, recall_number: str) -> None:
        quarantined(self)
        self.recall_number = recall_number
        self._touch(audit)

    class ReturnShipped(Aggregate.Event):
        """The site sent the kit back to a depot: under recall `recall_number`, or (since version 2,
        where the number may be None) as a routine return of stock the site no longer needs."""

        class_version = 2

        audit: dict[str, Any]
        site_id: UUID
        depot_id: UUID
        recall_number: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Only recalls sent kits back then: every version 1 event names its recall."""

    @event(ReturnShipped)
    def _return_shipped(
        self, audit: dict[str, Any], site_id: UUID, depot_id: UUID, recall_number: str | None
    ) -> None:
        return_shipped(self, depot_id=depot_id)
        self.returning_from = site_id
        self.recall_number = recall_number
        self._touch(audit)

    class ReturnReceived(Aggregate.Event):
        """The depot received the kit a site sent back."""

        audit: dict[str, Any]
        depot_id: UUID

    @event(ReturnReceived)
    def _return_received(self, audit: dict[str, Any], depot_id: UUID) -> None:
        return_received(self, depot_id=depot_id)
        self.returning_from = None
        self._touch(audit)

    class DestructionAuthorised(Aggregate.Event):
        """QA authorised the kit's destruction, signed."""

        audit: dict[str, Any]
        signature: dict[str, str]

    @event(DestructionAuthorised)
    def _destruction_authorised(self, audit: dict[str, Any], signature: dict[str, str]) -> None:
        destruction_authorised(self)
        self._touch(audit)

    class Destroyed(Aggregate.Event):
        """The kit was destroyed. Version 2 added `location_id`, the place that destroyed it (None in
        events recorded before: the kit's place at that moment)."""

        class_version = 2

        audit: dict[str, Any]
        certificate: str
        method: str
        location_id: UUID | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["location_id"] = None

    @event(Destroyed)
    def _destroyed(
        self, audit: dict[str, Any], certificate: str, method: str, location_id: UUID | None
    ) -> None:
        destroyed(self, location_id=location_id)
        self._touch(audit)

    class Relabelled(Aggregate.Event):
        """The kit was relabelled with a later expiry (its packaging run's expiry extension)."""

        audit: dict[str, Any]
        batch_number: str
        new_expiry: date

    @event(Relabelled)
    def _relabelled(self, audit: dict[str, Any], batch_number: str, new_expiry: date) -> None:
        relabelled(self, new_expiry=new_expiry)
        self._touch(audit)

MOVES: dict[type, Callable[..., None]] = {
    Kit.Commissioned: commissioned,
    Kit.Shipped: shipped,
    Kit.Received: received,
    Kit.Quarantined: quarantined,
    Kit.QuarantineReleased: quarantine_released,
    Kit.QuarantineRejected: quarantine_rejected,
    Kit.Dispensed: dispensed,
    Kit.Returned: returned,
    Kit.RecallQuarantined: quarantined,
    Kit.ReturnShipped: return_shipped,
    Kit.ReturnReceived: return_received,
    Kit.DestructionAuthorised: destruction_authorised,
    Kit.Destroyed: destroyed,
    Kit.Relabelled: relabelled,
}
"""Each kit event's move: call `MOVES[type(event)](whereabouts, **event_attributes)`."""
