"""Material lots: API, excipient, packaging component and drug-product lots, with QA status and stock."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger import gs1
from ledger.domain.base import LedgerAggregate, stable_id
from ledger.errors import (
    InsufficientQuantity,
    InvalidInput,
    InvalidTransition,
    LotNotHere,
    LotNotUsable,
    UnitMismatch,
)
from ledger.values import Quantity


class LotKind(StrEnum):
    API = "api"
    EXCIPIENT = "excipient"
    PACKAGING_COMPONENT = "packaging_component"
    DRUG_PRODUCT = "drug_product"


class LotStatus(StrEnum):
    QUARANTINE = "quarantine"
    RELEASED = "released"
    REJECTED = "rejected"
    ON_HOLD = "on_hold"
    RECALLED = "recalled"


MAX_SHELF_LIFE = timedelta(days=3653)
"""Default ceiling on expiry - manufacture (ten years); a setting (`LOTLINE_MAX_SHELF_LIFE_DAYS`)."""

EARLIEST_MANUFACTURE = date(2000, 1, 1)
"""No lot this ledger receives was made before this."""


# QA decisions allowed from each status (21 CFR 211.84/211.87, EU GMP ch. 5).
_TRANSITIONS = {
    "release": {LotStatus.QUARANTINE, LotStatus.ON_HOLD},
    "reject": {LotStatus.QUARANTINE, LotStatus.ON_HOLD, LotStatus.RELEASED},
    "put on hold": {LotStatus.RELEASED, LotStatus.QUARANTINE},
    "recall": {LotStatus.RELEASED, LotStatus.ON_HOLD, LotStatus.QUARANTINE},
}


def status_on_arrival(status: str, intact: bool) -> str:
    """A lot's status once a transfer's receipt records it: arrived damaged, a released or quarantined
    lot is on hold until QA decides. One rule, applied by `Lot` and by the read models."""
    if not intact and status in (LotStatus.RELEASED, LotStatus.QUARANTINE):
        return str(LotStatus.ON_HOLD)
    return str(status)


class Lot(LedgerAggregate):
    """A lot of one material, identified by GTIN + lot number; starts in quarantine."""

    @staticmethod
    def create_id(gtin: str, lot_number: str, **_: Any) -> UUID:
        return stable_id("lot", gtin, lot_number)

    class Received(LedgerAggregate.Created):
        """The lot was received at a place, in quarantine, with its quantity and dates."""

        gtin: str
        lot_number: str
        audit: dict[str, Any]
        kind: str
        material: str
        quantity: dict[str, str]
        location_id: UUID
        manufactured_on: date
        expires_on: date
        retest_on: date | None
        supplier: str | None
        supplier_lot: str | None
        produced_by_batch_id: UUID | None

    @event(Received)
    def __init__(
        self,
        gtin: str,
        lot_number: str,
        audit: dict[str, Any],
        kind: str,
        material: str,
        quantity: dict[str, str],
        location_id: UUID,
        manufactured_on: date,
        expires_on: date,
        retest_on: date | None,
        supplier: str | None,
        supplier_lot: str | None,
        produced_by_batch_id: UUID | None,
    ) -> None:
        self.gtin = gtin
        self.lot_number = lot_number
        self.kind = LotKind(kind)
        self.material = material
        self.received = Quantity.from_dict(quantity)
        self.remaining = self.received
        self.location_id = location_id
        self.manufactured_on = manufactured_on
        self.expires_on = expires_on
        self.retest_on = retest_on
        self.supplier = supplier
        self.supplier_lot = supplier_lot
        self.produced_by_batch_id = produced_by_batch_id
        self.status = LotStatus.QUARANTINE
        self.recall_number: str | None = None
        self.consumed_by: list[UUID] = []
        self.in_transit_to: UUID | None = None
        self._touch(audit)

    @classmethod
    def receive(
        cls,
        audit: dict[str, Any],
        *,
        gtin: str,
        lot_number: str,
        kind: LotKind,
        material: str,
        quantity: Quantity,
        location_id: UUID,
        manufactured_on: date,
        expires_on: date,
        retest_on: date | None = None,
        supplier: str | None = None,
        supplier_lot: str | None = None,
        produced_by_batch_id: UUID | None = None,
        received_on: date,
        max_shelf_life: timedelta = MAX_SHELF_LIFE,
    ) -> Lot:
        """A new lot in quarantine, after checking its identifiers, quantity and dates: made on or
        before the day it is received (and not before 2000), not expired that day, and expiring no
        later than `max_shelf_life` after its manufacture."""
        if quantity.amount <= 0:
            raise InvalidInput("a lot's quantity must be positive", field="quantity")
        if manufactured_on > received_on:
            raise InvalidInput(
                f"manufactured on {manufactured_on}, after the day it is received ({received_on})",
                field="manufactured_on",
            )
        if manufactured_on < EARLIEST_MANUFACTURE:
            raise InvalidInput(
                f"manufactured on {manufactured_on}, before {EARLIEST_MANUFACTURE}: not plausible",
                field="manufactured_on",
            )
        if expires_on <= manufactured_on:
            raise InvalidInput("expiry must be after manufacture", field="expires_on")
        if expires_on - manufactured_on > max_shelf_life:
            raise InvalidInput(
                f"expires on {expires_on}, more than {max_shelf_life.days} days after its manufacture "
                f"on {manufactured_on} (the configured shelf-life ceiling)",
                field="expires_on",
            )
        if expires_on < received_on:
            raise InvalidInput(
                f"expired on {expires_on}, before the day it is received ({received_on})", field="expires_on"
            )
        if retest_on is not None and not (manufactured_on < retest_on <= expires_on):
            raise InvalidInput("retest date must fall between manufacture and expiry", field="retest_on")
        return cls(
            gtin=gs1.gtin(gtin),
            lot_number=gs1.gs1_text(lot_number, "lot number", "lot_number"),
            audit=audit,
            kind=str(kind),
            material=material,
            quantity=quantity.as_dict(),
            location_id=location_id,
            manufactured_on=manufactured_on,
            expires_on=expires_on,
            retest_on=retest_on,
            supplier=supplier,
            supplier_lot=supplier_lot,
            produced_by_batch_id=produced_by_batch_id,
        )

    # --- rules -------------------------------------------------------------------------------

    def use_by(self) -> date:
        """The date after which the lot may not be used: the earlier of expiry and retest."""
        return min(d for d in (self.expires_on, self.retest_on) if d is not None)

    def require_usable(self, on: date) -> None:
        """Released, not past expiry or retest on the day of use."""
        if self.status != LotStatus.RELEASED:
            raise LotNotUsable(self.id, self.lot_number, f"status is {self.status}")
        if on > self.use_by():
            raise LotNotUsable(self.id, self.lot_number, f"expired or due for retest on {self.use_by()}")

    def require_at(self, location_id: UUID, step: str) -> None:
        """The lot is held at `location_id` (received or made there, or transferred and received there):
        nothing is formulated, packaged or sent from a place the lot is not at. Checked before
        anything else of the lot: the refusal says nothing of where it is or what state it is in."""
        if self.in_transit_to is not None or self.location_id != location_id:
            raise LotNotHere(self.id, self.lot_number, f"it is not held here; transfer it here before {step}")

    def require_quantity(self, qty: Quantity) -> Quantity:
        """`qty` in the lot's own unit, if that much remains; refuses mixing mass with counts."""
        if not qty.same_kind(self.remaining):
            raise UnitMismatch(
                f"lot {self.lot_number} is counted in {self.remaining.unit}, not {qty.unit}",
                field="quantity",
                lot_number=self.lot_number,
            )
        if qty.amount <= 0:
            raise InvalidInput("a consumed quantity must be positive", field="quantity")
        converted = qty.to(self.remaining.unit)
        if converted.amount > self.remaining.amount:
            raise InsufficientQuantity(self.id, self.lot_number, qty, self.remaining)
        return converted

    def _require_transition(self, action: str) -> None:
        if self.status not in _TRANSITIONS[action]:
            raise InvalidTransition("lot", self.lot_number, str(self.status), action)

    # --- commands ------------------------------------------------------------------------------

    def release(self, audit: dict[str, Any], signature: dict[str, str], results_ref: str) -> None:
        """QA releases the lot; never one already past its expiry or retest date."""
        self._require_transition("release")
        on = datetime.fromisoformat(audit["occurred_at"]).date()
        if on > self.use_by():
            raise LotNotUsable(self.id, self.lot_number, f"expired or due for retest on {self.use_by()}")
        self._require_after_last_step(audit, "release")
        self._released(audit, signature, results_ref)

    def reject(self, audit: dict[str, Any], signature: dict[str, str], results_ref: str | None) -> None:
        self._require_transition("reject")
        self._require_after_last_step(audit, "rejection")
        self._rejected(audit, signature, results_ref)

    def put_on_hold(self, audit: dict[str, Any]) -> None:
        self._require_transition("put on hold")
        self._require_after_last_step(audit, "hold")
        self._put_on_hold(audit)

    def recall(
        self, audit: dict[str, Any], signature: dict[str, str], recall_number: str | None = None
    ) -> None:
        """QA recalls the lot: alone, or as a suspect lot of recall campaign `recall_number`."""
        self._require_transition("recall")
        self._require_after_last_step(audit, "recall")
        self._recalled(audit, signature, recall_number)

    def consume(self, audit: dict[str, Any], qty: Quantity, by_step_id: UUID, step: str) -> Quantity:
        """Take `qty` for a formulation or packaging step; the caller checked usability on the day."""
        converted = self.require_quantity(qty)
        self._require_after_last_step(audit, step)
        self._consumed(audit, converted.as_dict(), by_step_id, step)
        return converted

    def ship_transfer(self, audit: dict[str, Any], transfer_number: str, from_id: UUID, to_id: UUID) -> None:
        """Send what remains of the lot from the place holding it to another (a transfer between
        manufacturing sites and depots). A rejected or recalled lot does not travel; one in quarantine
        or on hold may (QA decides on it wherever it is)."""
        self.require_at(from_id, "sending it")
        if to_id == from_id:
            raise InvalidInput("a transfer goes to another place", field="to_id")
        if self.status in (LotStatus.REJECTED, LotStatus.RECALLED):
            raise LotNotUsable(self.id, self.lot_number, f"status is {self.status}; it is not transferred")
        if self.remaining.amount <= 0:
            raise LotNotUsable(self.id, self.lot_number, "nothing of it remains to transfer")
        self._require_after_last_step(audit, "transfer")
        self._transfer_shipped(audit, transfer_number, from_id, to_id, self.remaining.as_dict())

    def receive_transfer(self, audit: dict[str, Any], location_id: UUID, intact: bool) -> None:
        """Receipt at the place the lot was sent to; a lot that arrives damaged is put on hold until QA
        decides (the receipt says why)."""
        if self.in_transit_to != location_id:  # not travelling, or travelling elsewhere: not said which
            raise LotNotHere(self.id, self.lot_number, "it is not on its way here; nothing to receive")
        if not intact and not audit.get("reason"):
            raise InvalidInput("a lot received damaged needs remarks saying what is wrong", field="remarks")
        self._require_after_last_step(audit, "receipt")
        self._transfer_received(audit, location_id, intact)

    def correct_received_quantity(
        self, audit: dict[str, Any], corrects_version: int, quantity: Quantity
    ) -> None:
        """A new event that corrects the received quantity; the original event stays as it was."""
        if not quantity.same_kind(self.received):
            raise UnitMismatch(f"lot {self.lot_number} is counted in {self.received.unit}", field="quantity")
        new = quantity.to(self.received.unit)
        used = self.received.amount - self.remaining.amount
        if new.amount < used:
            raise InsufficientQuantity(self.id, self.lot_number, Quantity(used, new.unit), new)
        if not audit.get("reason"):
            raise InvalidInput("a correction needs a reason", field="reason")
        self._quantity_corrected(audit, corrects_version, new.as_dict())

    # --- events --------------------------------------------------------------------------------

    class Released(Aggregate.Event):
        """QA released the lot for use, signed, citing the test results."""

        audit: dict[str, Any]
        signature: dict[str, str]
        results_ref: str

    @event(Released)
    def _released(self, audit: dict[str, Any], signature: dict[str, str], results_ref: str) -> None:
        self.status = LotStatus.RELEASED
        self._touch(audit)

    class Rejected(Aggregate.Event):
        """QA rejected the lot, signed (with the test results, when there are any)."""

        audit: dict[str, Any]
        signature: dict[str, str]
        results_ref: str | None

    @event(Rejected)
    def _rejected(self, audit: dict[str, Any], signature: dict[str, str], results_ref: str | None) -> None:
        self.status = LotStatus.REJECTED
        self._touch(audit)

    class PutOnHold(Aggregate.Event):
        """The lot was put on hold: not usable until QA decides again."""

        audit: dict[str, Any]

    @event(PutOnHold)
    def _put_on_hold(self, audit: dict[str, Any]) -> None:
        self.status = LotStatus.ON_HOLD
        self._touch(audit)

    class Recalled(Aggregate.Event):
        """QA recalled the lot, signed. Version 2 added `recall_number`: the recall campaign that named
        the lot suspect (None for a lot recalled on its own)."""

        class_version = 2

        audit: dict[str, Any]
        signature: dict[str, str]
        recall_number: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Lots recalled before the campaign was named in them: the campaign is not known here."""
            state["recall_number"] = None

    @event(Recalled)
    def _recalled(self, audit: dict[str, Any], signature: dict[str, str], recall_number: str | None) -> None:
        self.status = LotStatus.RECALLED
        self.recall_number = recall_number
        self._touch(audit)

    class Consumed(Aggregate.Event):
        """A quantity (in the lot's own unit) was taken by a formulation or packaging step."""

        audit: dict[str, Any]
        quantity: dict[str, str]
        by_step_id: UUID
        step: str

    @event(Consumed)
    def _consumed(self, audit: dict[str, Any], quantity: dict[str, str], by_step_id: UUID, step: str) -> None:
        self.remaining = Quantity(self.remaining.amount - Decimal(quantity["amount"]), self.remaining.unit)
        self.consumed_by.append(by_step_id)
        self._touch(audit)

    class TransferShipped(Aggregate.Event):
        """What remained of the lot (`quantity`) left `from_id` for `to_id` under the transfer
        (shipping document) `transfer_number`."""

        audit: dict[str, Any]
        transfer_number: str
        from_id: UUID
        to_id: UUID
        quantity: dict[str, str]

    @event(TransferShipped)
    def _transfer_shipped(
        self,
        audit: dict[str, Any],
        transfer_number: str,
        from_id: UUID,
        to_id: UUID,
        quantity: dict[str, str],
    ) -> None:
        self.in_transit_to = to_id
        self._touch(audit)

    class TransferReceived(Aggregate.Event):
        """The lot sent to `location_id` arrived there; not `intact`: damaged, put on hold."""

        audit: dict[str, Any]
        location_id: UUID
        intact: bool

    @event(TransferReceived)
    def _transfer_received(self, audit: dict[str, Any], location_id: UUID, intact: bool) -> None:
        self.location_id, self.in_transit_to = location_id, None
        self.status = LotStatus(status_on_arrival(self.status, intact))
        self._touch(audit)

    class QuantityCorrected(Aggregate.Event):
        """The received quantity recorded at version `corrects_version` was corrected (with a reason)."""

        audit: dict[str, Any]
        corrects_version: int
        quantity: dict[str, str]

    @event(QuantityCorrected)
    def _quantity_corrected(
        self, audit: dict[str, Any], corrects_version: int, quantity: dict[str, str]
    ) -> None:
        new = Quantity.from_dict(quantity)
        used = self.received.amount - self.remaining.amount
        self.received = new
        self.remaining = Quantity(new.amount - used, new.unit)
        self._touch(audit)
