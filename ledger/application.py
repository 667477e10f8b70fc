"""The ledger's application service: the only place that loads and saves aggregates.

Each public method is one step of the supply chain. It checks authority and the business rules
across every aggregate the step touches, then saves all of them in one atomic write, or nothing.
"""

from __future__ import annotations

import base64
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, JSONTranscoder, Transcoding

from ledger import gs1, site_keys
from ledger.domain import (
    Kit,
    KitStatus,
    Location,
    LocationKind,
    Lot,
    LotKind,
    LotStatus,
    ManufacturingBatch,
    PackagingRun,
    Shipment,
    SiteStatus,
    Trial,
)
from ledger.domain.base import LedgerAggregate, require_role, stamp
from ledger.domain.kit import ReceiptOutcome
from ledger.domain.recall import (
    KitOutcome,
    KitReport,
    KitState,
    Recall,
    RecallClass,
    RecallScope,
    group_kits,
    in_scope,
)
from ledger.errors import (
    AlreadyExists,
    BatchNotFound,
    ConcurrentWriteConflict,
    InvalidInput,
    KitNotFound,
    KitNotInRecall,
    KitsNotUsable,
    LedgerError,
    LocationNotFound,
    LotNotFound,
    LotNotUsable,
    NotFound,
    PackagingRunNotFound,
    RecallNotFound,
    ReceiptMismatch,
    ShipmentNotFound,
    SiteNotActive,
    SiteSignatureRefused,
    TrialNotFound,
    WrongSite,
)
from ledger.recorders import ChainReader
from ledger.site_keys import SiteSignature
from ledger.store import store_env
from ledger.values import Actor, Meaning, Quantity, Role, Signature, now, require_signature

A = TypeVar("A", bound=LedgerAggregate)


class DateAsISO(Transcoding):
    """Calendar dates (expiry, retest) as `YYYY-MM-DD`."""

    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


@dataclass(frozen=True, slots=True)
class Written:
    """What one step recorded: the (stream, version) of each new event, in order."""

    events: tuple[tuple[UUID, int], ...]
    ids: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OutputLot:
    """The drug-product lot a formulation produces."""

    gtin: str
    lot_number: str
    material: str
    expires_on: date
    retest_on: date | None = None


@dataclass(frozen=True, slots=True)
class Arm:
    """One treatment arm of a packaging run: which drug-product lot, how many units were issued."""

    treatment: str
    dp_lot_id: UUID
    units_per_kit: int
    units_issued: int
    samples: int = 0
    rejects: int = 0


_PEEK_CACHE_SIZE = 4096
_WRITE_CACHE_SIZE = 8
_WRITE_ATTEMPTS = 5
_WRITE_BACKOFF = 0.01
"""Seconds: a step that lost a race waits up to this times its attempt number before trying again."""

_NOT_FOUND: dict[type, Callable[[Any], NotFound]] = {
    Lot: LotNotFound,
    Kit: KitNotFound,
    Location: LocationNotFound,
    Trial: TrialNotFound,
    Shipment: ShipmentNotFound,
    ManufacturingBatch: BatchNotFound,
    PackagingRun: PackagingRunNotFound,
    Recall: RecallNotFound,
}

KitStateReader = Callable[[Sequence[UUID]], dict[UUID, KitState]]
"""Reads the current status and place of many kits at once (e.g. from a read model, fast); a recall
opened without one loads each kit from the store."""


class Ledger(Application[UUID]):
    """Lotline's write side: every material movement of a clinical supply chain, hash-chained."""

    name = "Lotline"

    def __init__(self, env: dict[str, str] | None = None) -> None:
        super().__init__(env)
        self._upstream: dict[UUID, tuple[UUID, ...]] = {}
        self._peeked: OrderedDict[UUID, LedgerAggregate] = OrderedDict()
        self._peek_lock = threading.Lock()
        self._writing: OrderedDict[UUID, LedgerAggregate] = OrderedDict()
        self._write_lock = threading.Lock()

    @classmethod
    def open(cls, database_url: str) -> Ledger:
        """The ledger on `sqlite:///file` or `postgresql://...`; tables are created when missing."""
        return cls(env=store_env(database_url))

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())

    @property
    def chain(self) -> ChainReader:
        recorder = self.recorder
        assert isinstance(recorder, ChainReader), "the ledger needs a chained recorder"
        return recorder

    # --- loading and saving ------------------------------------------------------------------------

    def get(self, cls: type[A], ident: UUID) -> A:
        """The aggregate `ident` of type `cls`, or that type's not-found error."""
        try:
            agg: Any = self.repository.get(ident)
        except AggregateNotFoundError:
            raise _NOT_FOUND[cls](ident) from None
        if not isinstance(agg, cls):
            raise _NOT_FOUND[cls](ident)
        return agg

    def _peek(self, cls: type[A], ident: UUID) -> A:
        """A read-only, current view of an aggregate that a step checks but does not change.

        Kept per process and brought up to date from the store on every call (only the events
        after the kept version are read), so it is never stale; never pass it to a command.
        """
        with self._peek_lock:
            agg = self._kept(self._peeked, _PEEK_CACHE_SIZE, cls, ident)
        if not isinstance(agg, cls):
            raise _NOT_FOUND[cls](ident)
        return agg

    def _save(self, *aggregates: LedgerAggregate, ids: dict[str, Any] | None = None) -> Written:
        """Save every aggregate of one step atomically; translate store conflicts."""
        pending = [(a.id, e.originator_version) for a in aggregates for e in a.pending_events]
        # save() empties pending_events, so note which aggregates are new before calling it.
        created = [a for a in aggregates if a.pending_events and a.pending_events[0].originator_version == 1]
        try:
            self.save(*aggregates)
        except IntegrityError:
            for a in created:
                if a.id in self.repository:
                    raise AlreadyExists(type(a).__name__.lower(), _business_key(a)) from None
            raise ConcurrentWriteConflict() from None
        return Written(tuple(pending), ids or {})

    def _on_recall(self, recall_id: UUID, step: Callable[[Recall], Written]) -> Written:
        """Run one step that changes a recall, on a copy of it kept for writing in this process.

        A recall of 50,000 kits takes ~0.4 s to load from its events; sites report on it one after
        another, so each step brings the kept copy up to date (only the newer events) instead of
        loading it. A copy a failed step may have changed is dropped. A step that lost a race with
        another writer (nothing written) is run again on the newer state, which re-checks it: so a
        step stamps its time inside `step`, after the copy is up to date.
        """
        for attempt in range(1, _WRITE_ATTEMPTS + 1):
            with self._write_lock:
                recall = self._writable_recall(recall_id)
                version = recall.version
                try:
                    return step(recall)
                except ConcurrentWriteConflict:
                    self._writing.pop(recall_id, None)
                    if attempt == _WRITE_ATTEMPTS:
                        raise
                except BaseException:
                    if recall.version != version:
                        self._writing.pop(recall_id, None)
                    raise
            time.sleep(random.uniform(0, _WRITE_BACKOFF * attempt))  # let the other writers pass
        raise AssertionError("unreachable")

    def _writable_recall(self, recall_id: UUID) -> Recall:
        """The kept copy of a recall for writing, brought up to date (caller holds the write lock)."""
        return self._kept(self._writing, _WRITE_CACHE_SIZE, Recall, recall_id)

    def _kept(self, kept: OrderedDict[UUID, Any], size: int, cls: type[A], ident: UUID) -> A:
        """The aggregate kept in `kept` (at most `size`, least recently used dropped first), brought up
        to date with only the events after its version; loaded when not kept. Caller holds the lock."""
        agg = kept.get(ident)
        if agg is None:
            agg = self.get(cls, ident)
        else:
            for e in self.events.get(ident, gt=agg.version):
                agg = e.mutate(agg)  # type: ignore[attr-defined]
            kept.move_to_end(ident)
        kept[ident] = agg
        if len(kept) > size:
            kept.popitem(last=False)
        return agg  # type: ignore[no-any-return]

    # --- reference data: trials and locations --------------------------------------------------------

    def register_trial(
        self,
        actor: Actor,
        *,
        code: str,
        title: str,
        sponsor: str,
        countries: Sequence[str],
        do_not_ship_days: int,
        do_not_dispense_days: int,
        occurred_at: datetime | None = None,
    ) -> UUID:
        require_role(actor, "register a trial", Role.ADMIN)
        code = gs1.gs1_text(code, "trial code", "code")
        if not countries:
            raise InvalidInput("a trial runs in at least one country", field="countries")
        for c in countries:
            _country(c)
        if not (0 <= do_not_dispense_days <= do_not_ship_days <= 730):
            raise InvalidInput(
                "expiry windows need 0 <= do_not_dispense_days <= do_not_ship_days <= 730",
                field="do_not_ship_days",
            )
        trial = Trial(
            code=code,
            audit=stamp(actor, occurred_at),
            title=title,
            sponsor=sponsor,
            countries=list(countries),
            do_not_ship_days=do_not_ship_days,
            do_not_dispense_days=do_not_dispense_days,
        )
        self._save(trial)
        return trial.id

    def register_location(
        self,
        actor: Actor,
        *,
        gln: str,
        kind: LocationKind | str,
        name: str,
        country: str,
        trial_id: UUID | None = None,
        site_number: str | None = None,
        address: str = "",
        occurred_at: datetime | None = None,
    ) -> UUID:
        require_role(actor, "register a location", Role.ADMIN)
        gln = gs1.gln(gln)
        kind = LocationKind(kind)
        _country(country)
        if kind == LocationKind.CLINICAL_SITE:
            if trial_id is None or not site_number:
                raise InvalidInput("a clinical site needs a trial and a site number", field="trial_id")
            trial = self.get(Trial, trial_id)
            if country not in trial.countries:
                raise InvalidInput(f"trial {trial.code} does not run in {country}", field="country")
        loc = Location(
            gln=gln,
            audit=stamp(actor, occurred_at),
            kind=str(kind),
            name=name,
            country=country,
            trial_id=trial_id,
            site_number=site_number,
            address=address,
        )
        self._save(loc)
        return loc.id

    def activate_site(self, actor: Actor, site_id: UUID, occurred_at: datetime | None = None) -> Written:
        require_role(actor, "activate a site", Role.ADMIN)
        site = self.get(Location, site_id)
        site.activate(stamp(actor, occurred_at))
        return self._save(site)

    # --- material lots -------------------------------------------------------------------------------

    def receive_lot(
        self,
        actor: Actor,
        *,
        gtin: str,
        lot_number: str,
        kind: LotKind | str,
        material: str,
        quantity: Quantity,
        location_id: UUID,
        manufactured_on: date,
        expires_on: date,
        retest_on: date | None = None,
        supplier: str | None = None,
        supplier_lot: str | None = None,
        occurred_at: datetime | None = None,
    ) -> UUID:
        """A lot received from a supplier (or made in-house outside Lotline); it starts in quarantine."""
        require_role(actor, "receive a lot", Role.MANUFACTURING, Role.DEPOT)
        kind = LotKind(kind)
        if kind == LotKind.DRUG_PRODUCT and supplier is None:
            raise InvalidInput(
                "a drug-product lot is produced by a formulation, or received from a supplier",
                field="supplier",
            )
        self._require_place(location_id, LocationKind.MANUFACTURING_SITE, LocationKind.DEPOT)
        return self._new_lot(
            actor,
            gtin,
            lot_number,
            kind,
            material,
            quantity,
            location_id,
            manufactured_on,
            expires_on,
            retest_on,
            supplier,
            supplier_lot,
            None,
            occurred_at,
        )

    def _new_lot(
        self,
        actor: Actor,
        gtin: str,
        lot_number: str,
        kind: LotKind,
        material: str,
        quantity: Quantity,
        location_id: UUID,
        manufactured_on: date,
        expires_on: date,
        retest_on: date | None,
        supplier: str | None,
        supplier_lot: str | None,
        batch_id: UUID | None,
        occurred_at: datetime | None,
        save: bool = True,
    ) -> Any:
        gtin = gs1.gtin(gtin)
        lot_number = gs1.gs1_text(lot_number, "lot number", "lot_number")
        if quantity.amount <= 0:
            raise InvalidInput("a lot's quantity must be positive", field="quantity")
        if expires_on <= manufactured_on:
            raise InvalidInput("expiry must be after manufacture", field="expires_on")
        if retest_on is not None and not (manufactured_on < retest_on <= expires_on):
            raise InvalidInput("retest date must fall between manufacture and expiry", field="retest_on")
        lot = Lot(
            gtin=gtin,
            lot_number=lot_number,
            audit=stamp(actor, occurred_at),
            kind=str(kind),
            material=material,
            quantity=quantity.as_dict(),
            location_id=location_id,
            manufactured_on=manufactured_on,
            expires_on=expires_on,
            retest_on=retest_on,
            supplier=supplier,
            supplier_lot=supplier_lot,
            produced_by_batch_id=batch_id,
        )
        if save:
            self._save(lot)
            return lot.id
        return lot

    def release_lot(
        self,
        actor: Actor,
        lot_id: UUID,
        *,
        signature: Signature | None,
        results_ref: str,
        occurred_at: datetime | None = None,
    ) -> Written:
        """QA release on test results or the supplier's certificate of analysis."""
        sig = self._qa_signature(actor, signature, Meaning.RELEASED, "release a lot")
        if not results_ref:
            raise InvalidInput("release needs the test results or certificate reference", field="results_ref")
        lot = self.get(Lot, lot_id)
        lot.release(stamp(actor, occurred_at), sig.as_dict(), results_ref)
        return self._save(lot)

    def reject_lot(
        self,
        actor: Actor,
        lot_id: UUID,
        *,
        signature: Signature | None,
        reason: str,
        results_ref: str | None = None,
        occurred_at: datetime | None = None,
    ) -> Written:
        sig = self._qa_signature(actor, signature, Meaning.REJECTED, "reject a lot")
        lot = self.get(Lot, lot_id)
        lot.reject(stamp(actor, occurred_at, _reason(reason)), sig.as_dict(), results_ref)
        return self._save(lot)

    def hold_lot(
        self, actor: Actor, lot_id: UUID, *, reason: str, occurred_at: datetime | None = None
    ) -> Written:
        require_role(actor, "put a lot on hold", Role.QA)
        lot = self.get(Lot, lot_id)
        lot.put_on_hold(stamp(actor, occurred_at, _reason(reason)))
        return self._save(lot)

    def recall_lot(
        self,
        actor: Actor,
        lot_id: UUID,
        *,
        signature: Signature | None,
        reason: str,
        occurred_at: datetime | None = None,
    ) -> Written:
        """Mark a lot recalled: nothing made from it ships or is dispensed from now on."""
        sig = self._qa_signature(actor, signature, Meaning.APPROVED, "recall a lot")
        lot = self.get(Lot, lot_id)
        lot.recall(stamp(actor, occurred_at, _reason(reason)), sig.as_dict())
        return self._save(lot)

    def correct_lot_quantity(
        self,
        actor: Actor,
        lot_id: UUID,
        *,
        corrects_version: int,
        quantity: Quantity,
        reason: str,
        occurred_at: datetime | None = None,
    ) -> Written:
        """Correct a mis-recorded received quantity with a new event that names the one it corrects."""
        require_role(actor, "correct a lot", Role.QA)
        lot = self.get(Lot, lot_id)
        if not (1 <= corrects_version <= lot.version):
            raise InvalidInput(
                f"lot {lot.lot_number} has no event version {corrects_version}", field="corrects_version"
            )
        lot.correct_received_quantity(stamp(actor, occurred_at, _reason(reason)), corrects_version, quantity)
        return self._save(lot)

    # --- formulation ---------------------------------------------------------------------------------

    def formulate(
        self,
        actor: Actor,
        *,
        batch_number: str,
        product: str,
        location_id: UUID,
        inputs: Sequence[tuple[UUID, Quantity]],
        output: OutputLot,
        theoretical_yield: Quantity,
        actual_yield: Quantity,
        equipment: Sequence[str],
        checked_by: Actor,
        occurred_at: datetime | None = None,
    ) -> tuple[UUID, UUID]:
        """One manufacturing batch: consume released lots, produce a drug-product lot in quarantine."""
        require_role(actor, "record a formulation", Role.MANUFACTURING)
        if checked_by.principal == actor.principal:
            raise InvalidInput("the second-person check must be done by someone else", field="checked_by")
        require_role(checked_by, "check a formulation", Role.MANUFACTURING, Role.QA)
        batch_number = gs1.gs1_text(batch_number, "batch number", "batch_number")
        self._require_place(location_id, LocationKind.MANUFACTURING_SITE)
        if not inputs:
            raise InvalidInput("a formulation consumes at least one lot", field="inputs")
        if len({lot_id for lot_id, _ in inputs}) != len(inputs):
            raise InvalidInput("each input lot is listed once", field="inputs")
        if not actual_yield.same_kind(theoretical_yield) or theoretical_yield.amount <= 0:
            raise InvalidInput("yields must be positive and of the same kind", field="theoretical_yield")
        audit = stamp(actor, occurred_at)
        day = _day(audit)
        batch_id = ManufacturingBatch.create_id(batch_number)
        lots, consumed = [], []
        has_api = False
        for lot_id, qty in inputs:
            lot = self.get(Lot, lot_id)
            if lot.kind == LotKind.DRUG_PRODUCT:
                raise LotNotUsable(lot.id, lot.lot_number, "a drug-product lot is packaged, not formulated")
            has_api = has_api or lot.kind == LotKind.API
            lot.require_usable(day)
            taken = lot.consume(audit, qty, batch_id, "formulation")
            lots.append(lot)
            consumed.append(
                {
                    "lot_id": lot.id,
                    "lot_number": lot.lot_number,
                    "kind": str(lot.kind),
                    "quantity": taken.as_dict(),
                }
            )
        if not has_api:
            raise InvalidInput("a formulation consumes at least one API lot", field="inputs")
        if output.expires_on > min(lot.use_by() for lot in lots if lot.kind == LotKind.API):
            raise InvalidInput("the drug product cannot expire after its API", field="output.expires_on")
        dp_lot: Lot = self._new_lot(
            actor,
            output.gtin,
            output.lot_number,
            LotKind.DRUG_PRODUCT,
            output.material,
            actual_yield,
            location_id,
            day,
            output.expires_on,
            output.retest_on,
            None,
            None,
            batch_id,
            occurred_at,
            save=False,
        )
        yield_pct = (actual_yield.base / theoretical_yield.base * 100).quantize(Decimal("0.01"))
        batch = ManufacturingBatch(
            batch_number=batch_number,
            audit=audit,
            product=product,
            location_id=location_id,
            inputs=consumed,
            output_lot_id=dp_lot.id,
            theoretical_yield=theoretical_yield.as_dict(),
            actual_yield=actual_yield.as_dict(),
            yield_percent=str(yield_pct),
            equipment=list(equipment),
            performed_by=actor.as_dict(),
            checked_by=checked_by.as_dict(),
        )
        self._save(batch, dp_lot, *lots)
        return batch.id, dp_lot.id

    def record_deviation(
        self,
        actor: Actor,
        batch_id: UUID,
        *,
        number: str,
        description: str,
        classification: str,
        occurred_at: datetime | None = None,
    ) -> Written:
        require_role(actor, "record a deviation", Role.MANUFACTURING, Role.QA)
        if classification not in ("minor", "major", "critical"):
            raise InvalidInput("classification is minor, major or critical", field="classification")
        batch = self.get(ManufacturingBatch, batch_id)
        batch.record_deviation(stamp(actor, occurred_at, description), number, description, classification)
        return self._save(batch)

    # --- packaging and release ---------------------------------------------------------------------------

    def package(
        self,
        actor: Actor,
        *,
        batch_number: str,
        trial_id: UUID,
        location_id: UUID,
        kit_gtin: str,
        label_version: str,
        arms: Sequence[Arm],
        kit_list: Sequence[tuple[str, str]],
        components: Sequence[tuple[UUID, Quantity]] = (),
        checked_by: Actor,
        occurred_at: datetime | None = None,
    ) -> UUID:
        """Package drug-product units into blinded kits per the kit list (kit number, treatment)."""
        require_role(actor, "package kits", Role.MANUFACTURING)
        if checked_by.principal == actor.principal:
            raise InvalidInput("the second-person check must be done by someone else", field="checked_by")
        require_role(checked_by, "check packaging", Role.MANUFACTURING, Role.QA)
        batch_number = gs1.gs1_text(batch_number, "batch number", "batch_number")
        kit_gtin = gs1.gtin(kit_gtin, "kit_gtin")
        trial = self.get(Trial, trial_id)
        self._require_place(location_id, LocationKind.MANUFACTURING_SITE, LocationKind.DEPOT)
        if not kit_list:
            raise InvalidInput("a packaging run produces at least one kit", field="kit_list")
        numbers = [gs1.gs1_text(n, "kit number", "kit_list") for n, _ in kit_list]
        if len(set(numbers)) != len(numbers):
            raise InvalidInput("kit numbers in a kit list are unique", field="kit_list")
        by_arm: dict[str, int] = {}
        for _, treatment in kit_list:
            by_arm[treatment] = by_arm.get(treatment, 0) + 1
        if set(by_arm) != {a.treatment for a in arms} or len(arms) != len(by_arm):
            raise InvalidInput("every treatment in the kit list needs exactly one arm", field="arms")
        audit = stamp(actor, occurred_at)
        day = _day(audit)
        run_id = PackagingRun.create_id(batch_number)
        lots: list[Lot] = []
        inputs: list[dict[str, Any]] = []
        arm_records: list[dict[str, Any]] = []
        for arm in arms:
            kit_count = by_arm[arm.treatment]
            # Reconciliation of the run (EU GMP Annex 13 §32): kits + samples + rejects = units issued.
            accounted = kit_count * arm.units_per_kit + arm.samples + arm.rejects
            if (
                min(arm.units_per_kit, arm.units_issued, arm.samples, arm.rejects) < 0
                or arm.units_per_kit == 0
            ):
                raise InvalidInput("unit counts must be positive", field="arms")
            if accounted != arm.units_issued:
                raise InvalidInput(
                    f"arm {arm.treatment}: {kit_count} kits x {arm.units_per_kit} + {arm.samples} samples + "
                    f"{arm.rejects} rejects = {accounted} units, but {arm.units_issued} were issued",
                    field="arms",
                    treatment=arm.treatment,
                )
            lot = self.get(Lot, arm.dp_lot_id)
            if lot.kind != LotKind.DRUG_PRODUCT:
                raise LotNotUsable(lot.id, lot.lot_number, "only drug-product lots fill kits")
            lot.require_usable(day)
            taken = lot.consume(
                audit, Quantity.of(arm.units_issued, "unit", "units_issued"), run_id, "packaging"
            )
            lots.append(lot)
            inputs.append(
                {
                    "lot_id": lot.id,
                    "lot_number": lot.lot_number,
                    "kind": str(lot.kind),
                    "quantity": taken.as_dict(),
                }
            )
            arm_records.append(
                {
                    "treatment": arm.treatment,
                    "dp_lot_id": lot.id,
                    "kits": kit_count,
                    "units_per_kit": arm.units_per_kit,
                    "units_issued": arm.units_issued,
                    "samples": arm.samples,
                    "rejects": arm.rejects,
                }
            )
        for lot_id, qty in components:
            lot = self.get(Lot, lot_id)
            if lot.kind != LotKind.PACKAGING_COMPONENT:
                raise LotNotUsable(lot.id, lot.lot_number, "not a packaging component")
            lot.require_usable(day)
            taken = lot.consume(audit, qty, run_id, "packaging")
            lots.append(lot)
            inputs.append(
                {
                    "lot_id": lot.id,
                    "lot_number": lot.lot_number,
                    "kind": str(lot.kind),
                    "quantity": taken.as_dict(),
                }
            )
        if len({lot.id for lot in lots}) != len(lots):
            raise InvalidInput("each input lot is listed once", field="components")
        # A blinded kit's expiry is the earliest of what went in, the same for every arm.
        expiry = min(lot.use_by() for lot in lots)
        if expiry <= day:
            raise InvalidInput(f"kits would expire on {expiry}, before they are packaged", field="arms")
        run = PackagingRun(
            batch_number=batch_number,
            audit=audit,
            trial_id=trial.id,
            location_id=location_id,
            kit_gtin=kit_gtin,
            label_version=label_version,
            expires_on=expiry,
            inputs=inputs,
            arms=arm_records,
            samples=sum(a.samples for a in arms),
            rejects=sum(a.rejects for a in arms),
            kit_numbers=numbers,
            allocation=dict(kit_list),
            performed_by=actor.as_dict(),
            checked_by=checked_by.as_dict(),
        )
        kits = [
            Kit(
                gtin=kit_gtin,
                kit_number=n,
                audit=audit,
                trial_id=trial.id,
                packaging_run_id=run.id,
                batch_number=batch_number,
                label_version=label_version,
                expires_on=expiry,
                location_id=location_id,
            )
            for n in numbers
        ]
        self._save(run, *lots, *kits)
        return run.id

    def dispose_packaging(
        self,
        actor: Actor,
        run_id: UUID,
        *,
        signature: Signature | None,
        released: bool,
        reason: str | None = None,
        occurred_at: datetime | None = None,
    ) -> Written:
        meaning = Meaning.RELEASED if released else Meaning.REJECTED
        sig = self._qa_signature(actor, signature, meaning, "dispose a packaged batch")
        run = self.get(PackagingRun, run_id)
        if released:
            self._require_upstream_clean(run.id, run)
        run.dispose(stamp(actor, occurred_at, reason), sig.as_dict(), released)
        return self._save(run)

    def certify_packaging(
        self, actor: Actor, run_id: UUID, *, signature: Signature | None, occurred_at: datetime | None = None
    ) -> Written:
        require_role(actor, "certify a batch", Role.QP)
        sig = require_signature(signature, Meaning.CERTIFIED, "QP certification")
        _require_own(actor, sig)
        run = self.get(PackagingRun, run_id)
        run.certify(stamp(actor, occurred_at), sig.as_dict())
        return self._save(run)

    def sponsor_release(
        self,
        actor: Actor,
        run_id: UUID,
        *,
        country: str,
        signature: Signature | None,
        occurred_at: datetime | None = None,
    ) -> Written:
        sig = self._qa_signature(actor, signature, Meaning.SPONSOR_RELEASED, "sponsor-release a batch")
        run = self.get(PackagingRun, run_id)
        trial = self.get(Trial, run.trial_id)
        if _country(country) not in trial.countries:
            raise InvalidInput(f"trial {trial.code} does not run in {country}", field="country")
        run.release_for_country(stamp(actor, occurred_at), sig.as_dict(), country)
        return self._save(run)

    def extend_expiry(
        self,
        actor: Actor,
        run_id: UUID,
        *,
        new_expiry: date,
        signature: Signature | None,
        reason: str,
        occurred_at: datetime | None = None,
    ) -> Written:
        """Relabel every kit of a run still in the supply chain with a later, supported expiry."""
        sig = self._qa_signature(actor, signature, Meaning.RELABELLED, "extend expiry")
        run = self.get(PackagingRun, run_id)
        audit = stamp(actor, occurred_at, _reason(reason))
        supported = min(self.get(Lot, lot_id).expires_on for lot_id in run.input_lot_ids)
        run.extend_expiry(audit, sig.as_dict(), new_expiry, supported)
        kits = [self.get(Kit, Kit.create_id(run.kit_gtin, n)) for n in run.kit_numbers]
        relabelled = [
            k for k in kits if k.status in (KitStatus.AVAILABLE, KitStatus.RECEIVED, KitStatus.QUARANTINED)
        ]
        for kit in relabelled:
            kit.relabel(audit, run.batch_number, new_expiry)
        return self._save(run, *relabelled)

    # --- distribution --------------------------------------------------------------------------------

    def ship(
        self,
        actor: Actor,
        *,
        shipment_number: str,
        sscc: str,
        from_id: UUID,
        to_id: UUID,
        kit_ids: Sequence[UUID],
        min_celsius: Decimal,
        max_celsius: Decimal,
        logger_id: str | None = None,
        carrier: str | None = None,
        occurred_at: datetime | None = None,
    ) -> UUID:
        """Ship released kits from a depot to an activated site; every kit is checked, all or nothing."""
        require_role(actor, "ship kits", Role.DEPOT)
        shipment_number = gs1.gs1_text(shipment_number, "shipment number", "shipment_number")
        sscc = gs1.sscc(sscc)
        if not kit_ids:
            raise InvalidInput("a shipment carries at least one kit", field="kit_ids")
        if len(set(kit_ids)) != len(kit_ids):
            raise InvalidInput("each kit is listed once", field="kit_ids")
        if Decimal(min_celsius) >= Decimal(max_celsius):
            raise InvalidInput("min_celsius must be below max_celsius", field="min_celsius")
        self._require_place(from_id, LocationKind.DEPOT, LocationKind.MANUFACTURING_SITE)
        site = self._peek(Location, to_id)
        if not site.is_clinical_site:
            raise InvalidInput(f"{site.name} is not a clinical site", field="to_id")
        if site.status != SiteStatus.ACTIVATED:
            raise SiteNotActive(site.id, site.name, str(site.status))
        trial = self._peek(Trial, site.trial_id) if site.trial_id else None
        audit = stamp(actor, occurred_at)
        site.require_active_at(audit["occurred_at"])
        day = _day(audit)
        shipment_id = Shipment.create_id(shipment_number)
        runs: dict[UUID, PackagingRun] = {}
        kits, problems = [], []
        for kit_id in kit_ids:
            kit_number = str(kit_id)
            try:
                kit = self.get(Kit, kit_id)
                kit_number = kit.kit_number
                if trial is None or kit.trial_id != trial.id:
                    raise InvalidInput(f"kit {kit.kit_number} belongs to another trial", field="kit_ids")
                kit.require_not_expired_by(trial.last_ship_date(kit.expires_on), day, "do-not-ship")
                run = self._run_checked(kit.packaging_run_id, runs)
                run.require_released_for(site.country, at=audit["occurred_at"])
                kit.ship(audit, shipment_id, from_id, to_id)
                kits.append(kit)
            except LedgerError as e:
                problems.append(_problem(kit_id, kit_number, e))
        if problems:
            raise KitsNotUsable("ship", problems)
        shipment = Shipment(
            shipment_number=shipment_number,
            audit=audit,
            sscc=sscc,
            from_id=from_id,
            to_id=to_id,
            kit_ids=[k.id for k in kits],
            kit_numbers=[k.kit_number for k in kits],
            min_celsius=Decimal(min_celsius),
            max_celsius=Decimal(max_celsius),
            logger_id=logger_id,
            carrier=carrier,
        )
        self._save(shipment, *kits)
        return shipment.id

    def confirm_receipt(
        self,
        actor: Actor,
        shipment_id: UUID,
        *,
        site_id: UUID,
        outcomes: dict[str, ReceiptOutcome | str],
        logger_min: Decimal | None = None,
        logger_max: Decimal | None = None,
        occurred_at: datetime | None = None,
        site_signature: SiteSignature | None = None,
    ) -> Written:
        """The site's receipt, per kit number: received, damaged or missing; an excursion quarantines.

        With `site_signature`, the site's own Ed25519 signature over the confirmation
        (`ledger.site_keys.receipt_message`) is verified against the site's registered key before
        anything is recorded, and kept in the event.
        """
        require_role(actor, "confirm a receipt", Role.SITE)
        shipment = self.get(Shipment, shipment_id)
        if shipment.to_id != site_id:
            raise WrongSite(shipment.shipment_number, site_id)
        if site_signature is not None and occurred_at is None:
            raise InvalidInput("a site-signed receipt states the occurred_at it signed", field="occurred_at")
        audit = stamp(actor, occurred_at)
        known = dict(zip(shipment.kit_numbers, shipment.kit_ids, strict=True))
        problems = []
        parsed: dict[str, ReceiptOutcome] = {}
        for number, outcome in outcomes.items():
            if number not in known:
                problems.append({"kit_number": number, "reason": "not in this shipment"})
                continue
            try:
                parsed[number] = ReceiptOutcome(outcome)
            except ValueError:
                problems.append(
                    {
                        "kit_number": number,
                        "reason": f"outcome {outcome!r} is not received, damaged or missing",
                    }
                )
        for number in known:
            if number not in outcomes:
                problems.append({"kit_number": number, "reason": "not accounted for in the receipt"})
        if problems:
            raise ReceiptMismatch(shipment.shipment_number, problems)
        excursion = shipment.is_excursion(logger_min, logger_max)
        confirmed = {n: str(o) for n, o in parsed.items()}
        signed = None
        if site_signature is not None:
            shipment.require_in_transit()  # a replay of an accepted receipt fails here, as a replay
            self._verify_site_signature(
                shipment, site_signature, confirmed, logger_min, logger_max, audit["occurred_at"]
            )
            signed = site_signature.as_dict()
        shipment.confirm_receipt(audit, confirmed, logger_min, logger_max, excursion, signed)
        kits = []
        for number, outcome in parsed.items():
            kit = self.get(Kit, known[number])
            kit.receive(audit, shipment.id, shipment.to_id, outcome, excursion)
            kits.append(kit)
        return self._save(shipment, *kits, ids={"excursion": excursion})

    def register_site_key(
        self, actor: Actor, site_id: UUID, public_key_b64: str, occurred_at: datetime | None = None
    ) -> Written:
        """Register a clinical site's Ed25519 public key (base64); from now on the site signs with it."""
        require_role(actor, "register a site key", Role.ADMIN)
        raw = site_keys.parse_public_key(public_key_b64)
        site = self.get(Location, site_id)
        key_id = site_keys.site_key_id(raw)
        site.register_key(stamp(actor, occurred_at), base64.b64encode(raw).decode(), key_id)
        return self._save(site, ids={"key_id": key_id})

    def _verify_site_signature(
        self,
        shipment: Shipment,
        signature: SiteSignature,
        outcomes: dict[str, str],
        logger_min: Decimal | None,
        logger_max: Decimal | None,
        occurred_at: str,
    ) -> None:
        site_keys.require_nonce(signature.nonce)
        site = self._peek(Location, shipment.to_id)
        key = site.current_site_key(signature.key_id)
        if key is None:
            replaced = signature.key_id in site.site_keys
            known = "was replaced by a newer key" if replaced else "is not registered for this site"
            current = site.site_key_id or "none: register one first"
            raise SiteSignatureRefused(
                shipment.shipment_number,
                site.id,
                signature.key_id,
                f"key {signature.key_id} {known}; the site's current key is {current}",
            )
        message = site_keys.receipt_message(
            shipment_id=shipment.id,
            site_id=site.id,
            outcomes=outcomes,
            logger_min=logger_min,
            logger_max=logger_max,
            occurred_at=occurred_at,
            nonce=signature.nonce,
        )
        site_keys.verify_site_signature(
            base64.b64decode(key), signature, message, shipment=shipment.shipment_number, site_id=site.id
        )

    def report_excursion(
        self,
        actor: Actor,
        site_id: UUID,
        *,
        kit_ids: Sequence[UUID],
        min_celsius: Decimal,
        max_celsius: Decimal,
        duration_minutes: int,
        occurred_at: datetime | None = None,
    ) -> Written:
        """A temperature excursion in storage: the kits go to quarantine until QA decides."""
        require_role(actor, "report an excursion", Role.SITE, Role.DEPOT)
        if duration_minutes <= 0:
            raise InvalidInput("duration_minutes must be positive", field="duration_minutes")
        audit = stamp(actor, occurred_at)
        excursion = {
            "location_id": str(site_id),
            "min_celsius": str(min_celsius),
            "max_celsius": str(max_celsius),
            "duration_minutes": duration_minutes,
        }
        kits = self._kits_at(site_id, kit_ids, "quarantine")
        problems = []
        for kit in kits:
            try:
                kit.quarantine(audit, excursion)
            except LedgerError as e:
                problems.append(_problem(kit.id, kit.kit_number, e))
        if problems:
            raise KitsNotUsable("quarantine", problems)
        return self._save(*kits)

    def decide_quarantine(
        self,
        actor: Actor,
        *,
        kit_ids: Sequence[UUID],
        release: bool,
        signature: Signature | None,
        reason: str,
        occurred_at: datetime | None = None,
    ) -> Written:
        """QA's decision on quarantined kits: back to use, or rejected (damaged)."""
        meaning = Meaning.RELEASED if release else Meaning.REJECTED
        sig = self._qa_signature(actor, signature, meaning, "decide on quarantined kits")
        audit = stamp(actor, occurred_at, _reason(reason))
        kits = [self.get(Kit, k) for k in _unique(kit_ids)]
        self._each(kits, "decide quarantine", lambda k: k.decide_quarantine(audit, sig.as_dict(), release))
        return self._save(*kits)

    def dispense(
        self, actor: Actor, kit_id: UUID, *, site_id: UUID, subject: str, occurred_at: datetime | None = None
    ) -> Written:
        """Dispense a received kit to a pseudonymous subject, inside the do-not-dispense window."""
        require_role(actor, "dispense a kit", Role.SITE)
        subject = gs1.gs1_text(subject, "subject number", "subject", max_len=40)
        kit = self.get(Kit, kit_id)
        audit = stamp(actor, occurred_at)
        trial = self._peek(Trial, kit.trial_id)
        kit.require_status("dispense", KitStatus.RECEIVED)
        kit.require_not_expired_by(trial.last_dispense_date(kit.expires_on), _day(audit), "do-not-dispense")
        self._require_upstream_clean(kit.packaging_run_id)
        kit.dispense(audit, site_id, subject)
        return self._save(kit)

    def return_kit(
        self,
        actor: Actor,
        kit_id: UUID,
        *,
        site_id: UUID,
        condition: str,
        occurred_at: datetime | None = None,
    ) -> Written:
        require_role(actor, "return a kit", Role.SITE)
        if condition not in ("used", "unused", "partially_used"):
            raise InvalidInput("condition is used, unused or partially_used", field="condition")
        kit = self.get(Kit, kit_id)
        kit.return_(stamp(actor, occurred_at), site_id, condition)
        return self._save(kit)

    def authorise_destruction(
        self,
        actor: Actor,
        *,
        kit_ids: Sequence[UUID],
        signature: Signature | None,
        reason: str,
        occurred_at: datetime | None = None,
    ) -> Written:
        """Written, signed authorisation (EU Annex 13 §48) before any kit is destroyed."""
        sig = self._qa_signature(actor, signature, Meaning.AUTHORISED_DESTRUCTION, "authorise destruction")
        audit = stamp(actor, occurred_at, _reason(reason))
        kits = [self.get(Kit, k) for k in _unique(kit_ids)]
        self._each(kits, "authorise destruction", lambda k: k.authorise_destruction(audit, sig.as_dict()))
        return self._save(*kits)

    def destroy(
        self,
        actor: Actor,
        *,
        kit_ids: Sequence[UUID],
        certificate: str,
        method: str,
        occurred_at: datetime | None = None,
    ) -> Written:
        require_role(actor, "destroy kits", Role.DEPOT, Role.SITE)
        if not certificate:
            raise InvalidInput("destruction needs the destruction certificate number", field="certificate")
        audit = stamp(actor, occurred_at)
        kits = [self.get(Kit, k) for k in _unique(kit_ids)]
        self._each(kits, "destroy", lambda k: k.destroy(audit, certificate, method))
        return self._save(*kits)

    # --- recall campaigns ------------------------------------------------------------------------------

    def open_recall(
        self,
        actor: Actor,
        *,
        recall_number: str,
        lot_ids: Sequence[UUID],
        reason: str,
        classification: RecallClass | str,
        scope: RecallScope | str,
        signature: Signature | None,
        kit_states: KitStateReader | None = None,
        source: dict[str, Any] | None = None,
        occurred_at: datetime | None = None,
    ) -> Written:
        """Open a recall: recall the lots and record every kit downstream, as it is now, in one write.

        `kit_states` reads the kits' current status and place in bulk (a read model, caught up);
        without it each kit is loaded from the store. `source` says where the states came from.
        """
        sig = self._qa_signature(actor, signature, Meaning.APPROVED, "open a recall")
        recall_number = gs1.gs1_text(recall_number, "recall number", "recall_number")
        cls = _choice(RecallClass, classification, "classification")
        chosen = _choice(RecallScope, scope, "scope")
        if not lot_ids or len(set(lot_ids)) != len(lot_ids):
            raise InvalidInput("a recall names each suspect lot once, at least one", field="lot_ids")
        audit = stamp(actor, occurred_at, _reason(reason))
        lots = [self.get(Lot, lot_id) for lot_id in lot_ids]
        for lot in lots:
            lot.recall(audit, sig.as_dict())
        runs = self._runs_downstream(lot_ids)
        kit_ids = [Kit.create_id(r.kit_gtin, n) for r in runs for n in r.kit_numbers]
        states = (kit_states or self._kit_states)(kit_ids)
        missing = [k for k in kit_ids if k not in states]
        if missing:
            raise KitNotFound(missing[0])
        day = _day(audit)
        affected = [states[k] for k in kit_ids if in_scope(states[k], chosen, day)]
        recall = Recall(
            recall_number=recall_number,
            audit=audit,
            signature=sig.as_dict(),
            lots=[{"lot_id": str(lt.id), "lot_number": lt.lot_number, "gtin": lt.gtin} for lt in lots],
            classification=str(cls),
            scope=str(chosen),
            runs=[
                {"run_id": str(r.id), "batch_number": r.batch_number, "kits": str(len(r.kit_numbers))}
                for r in runs
            ],
            places=self._recall_places(affected),
            kit_groups=group_kits(affected),
            shipments_in_transit=self._in_transit(affected),
            source=source or {"reader": "ledger"},
        )
        return self._save(recall, *lots, ids={"recall_id": recall.id, "kits": len(affected)})

    def acknowledge_recall(
        self, actor: Actor, recall_id: UUID, *, place_id: UUID, occurred_at: datetime | None = None
    ) -> Written:
        """A site (or the depot) acknowledges the recall notice."""
        require_role(actor, "acknowledge a recall", Role.SITE, Role.DEPOT)

        def step(recall: Recall) -> Written:
            audit = stamp(actor, occurred_at)
            recall.acknowledge(audit, place_id)
            return self._save(recall)

        return self._on_recall(recall_id, step)

    def report_recall_kit(
        self,
        actor: Actor,
        recall_id: UUID,
        *,
        place_id: UUID,
        kit_id: UUID,
        outcome: KitOutcome | str,
        subject: str | None = None,
        occurred_at: datetime | None = None,
    ) -> Written:
        """A site reports one affected kit it held: quarantined, returned, or dispensed (with the subject)."""
        parsed = _choice(KitOutcome, outcome, "outcome")
        return self.report_recall_kits(
            actor,
            recall_id,
            place_id=place_id,
            reports=[KitReport(kit_id, parsed, subject)],
            occurred_at=occurred_at,
        )

    def report_recall_kits(
        self,
        actor: Actor,
        recall_id: UUID,
        *,
        place_id: UUID,
        reports: Sequence[KitReport],
        occurred_at: datetime | None = None,
    ) -> Written:
        """A place reports on kits of the recall it held, in one write (all or nothing).

        A dispensed kit must match the ledger's own record of it (status and subject), a quarantined
        one must be held at the place (not missing, in transit or dispensed) and is put in quarantine
        there, so stock answers no longer count it usable. A returned kit is sent back, in the same
        write, to the depot that shipped it: it is in transit until the depot records it received.
        With several kits, every refused kit is named.
        """
        require_role(actor, "report a recalled kit", Role.SITE, Role.DEPOT)
        if not reports:
            raise InvalidInput("a report names at least one kit", field="reports")
        _unique([r.kit_id for r in reports])

        def step(recall: Recall) -> Written:
            audit = stamp(actor, occurred_at)
            kits: list[Kit] = []
            problems: list[tuple[UUID, LedgerError]] = []
            for report in reports:
                try:
                    recall.check_report(audit, place_id, report)
                    kit = self._reported_kit(audit, recall, place_id, report)
                except LedgerError as e:
                    problems.append((report.kit_id, e))
                    continue
                if kit is not None:
                    kits.append(kit)
            _refuse_all(recall, "report", problems, len(reports))
            for report in reports:
                recall.report_kit(audit, place_id, report)
            return self._save(recall, *kits)

        return self._on_recall(recall_id, step)

    def _reported_kit(
        self, audit: dict[str, Any], recall: Recall, place_id: UUID, report: KitReport
    ) -> Kit | None:
        """Check a report against the kit's own record, and move the kit: a dispensed kit was dispensed
        to that subject; a quarantined kit is held at the place and is quarantined there
        (`Kit.RecallQuarantined`); a returned kit is sent back to its depot. The kit to save, if any."""
        if report.outcome == KitOutcome.DISPENSED:
            kit = self._peek(Kit, report.kit_id)
            if kit.status != KitStatus.DISPENSED or kit.subject != report.subject:
                raise InvalidInput(
                    f"the ledger records kit {kit.kit_number} as {kit.status}"
                    + (f" to {kit.subject}" if kit.subject else "")
                    + f", not dispensed to {report.subject}",
                    field="subject",
                )
            return None
        if report.outcome == KitOutcome.QUARANTINED:
            kit = self.get(Kit, report.kit_id)
            return kit if kit.quarantine_for_recall(audit, place_id, recall.recall_number) else None
        kit = self.get(Kit, report.kit_id)
        if kit.shipment_id is None:
            raise InvalidInput(
                f"kit {kit.kit_number} was never shipped: the place holding it quarantines it",
                field="outcome",
            )
        depot_id = self._peek(Shipment, kit.shipment_id).from_id
        kit.send_back(audit, place_id, depot_id, recall.recall_number)
        return kit

    def receive_recall_returns(
        self,
        actor: Actor,
        recall_id: UUID,
        *,
        depot_id: UUID,
        kit_ids: Sequence[UUID],
        occurred_at: datetime | None = None,
    ) -> Written:
        """The depot received kits that sites sent back: they are in its hands and accounted for."""
        require_role(actor, "receive a recall return", Role.DEPOT)
        self._require_place(depot_id, LocationKind.DEPOT)
        _unique(kit_ids)

        def step(recall: Recall) -> Written:
            audit = stamp(actor, occurred_at)
            kits = [self.get(Kit, k) for k in kit_ids if k in recall.kits]
            problems: list[tuple[UUID, LedgerError]] = [
                (k, KitNotInRecall(recall.recall_number, k)) for k in kit_ids if k not in recall.kits
            ]
            for kit in kits:
                try:
                    recall.check_return(audit, kit.id)
                    kit.receive_back(audit, depot_id)
                except LedgerError as e:
                    problems.append((kit.id, e))
            _refuse_all(recall, "receive as returned", problems, len(kit_ids))
            for kit_id in kit_ids:
                recall.receive_return(audit, depot_id, kit_id)
            return self._save(recall, *kits)

        return self._on_recall(recall_id, step)

    def receive_recall_return(
        self,
        actor: Actor,
        recall_id: UUID,
        *,
        depot_id: UUID,
        kit_id: UUID,
        occurred_at: datetime | None = None,
    ) -> Written:
        """The depot received one recalled kit a site sent back."""
        return self.receive_recall_returns(
            actor, recall_id, depot_id=depot_id, kit_ids=[kit_id], occurred_at=occurred_at
        )

    def destroy_recalled_kits(
        self,
        actor: Actor,
        recall_id: UUID,
        *,
        depot_id: UUID,
        kit_ids: Sequence[UUID],
        certificate: str,
        method: str,
        occurred_at: datetime | None = None,
    ) -> Written:
        """The depot destroys kits of the recall it holds, after QA authorised it (signed): the kits
        are destroyed and the recall records each one as destroyed, with the certificate, at once."""
        require_role(actor, "destroy recalled kits", Role.DEPOT)
        self._require_place(depot_id, LocationKind.DEPOT)
        if not certificate or not certificate.strip():
            raise InvalidInput("destruction needs the destruction certificate number", field="certificate")
        if not method or not method.strip():
            raise InvalidInput("destruction names its method", field="method")
        _unique(kit_ids)

        def step(recall: Recall) -> Written:
            audit = stamp(actor, occurred_at)
            problems: list[tuple[UUID, LedgerError]] = []
            kits = []
            for kit_id in kit_ids:
                try:
                    recall.require_kit(kit_id)
                    kit = self.get(Kit, kit_id)
                    kit.require_at(depot_id, "destroy")
                    kit.destroy(audit, certificate.strip(), method.strip())
                    recall.check_destroyed(audit, kit_id)
                except LedgerError as e:
                    problems.append((kit_id, e))
                    continue
                kits.append(kit)
            _refuse_all(recall, "destroy", problems, len(kit_ids))
            for kit_id in kit_ids:
                recall.record_destroyed(audit, depot_id, kit_id, certificate.strip(), method.strip())
            return self._save(recall, *kits)

        return self._on_recall(recall_id, step)

    def justify_unaccounted(
        self,
        actor: Actor,
        recall_id: UUID,
        *,
        kit_id: UUID,
        justification: str,
        signature: Signature | None,
        occurred_at: datetime | None = None,
    ) -> Written:
        """QA's signed justification for an affected kit that cannot be accounted for."""
        sig = self._qa_signature(actor, signature, Meaning.APPROVED, "justify an unaccounted kit")

        def step(recall: Recall) -> Written:
            audit = stamp(actor, occurred_at)
            recall.justify(audit, sig.as_dict(), kit_id, justification or "")
            return self._save(recall)

        return self._on_recall(recall_id, step)

    def close_recall(
        self,
        actor: Actor,
        recall_id: UUID,
        *,
        signature: Signature | None,
        occurred_at: datetime | None = None,
    ) -> Written:
        """QA closes the recall (signed): refused while any affected kit is unaccounted for."""
        sig = self._qa_signature(actor, signature, Meaning.APPROVED, "close a recall")

        def step(recall: Recall) -> Written:
            audit = stamp(actor, occurred_at)
            recall.close(audit, sig.as_dict())
            return self._save(recall)

        return self._on_recall(recall_id, step)

    def recall_view(self, recall_id: UUID) -> Recall:
        """A read-only, current view of a recall: kept per process, brought up to date on each call."""
        return self._peek(Recall, recall_id)

    def _runs_downstream(self, lot_ids: Sequence[UUID]) -> list[PackagingRun]:
        """Every packaging run made from the lots: lot -> batches -> drug-product lots -> runs."""
        seen: set[UUID] = set()
        runs: dict[UUID, PackagingRun] = {}
        stack = list(lot_ids)
        while stack:
            lot_id = stack.pop()
            if lot_id in seen:
                continue
            seen.add(lot_id)
            for step_id in dict.fromkeys(self._peek(Lot, lot_id).consumed_by):
                if step_id in runs:
                    continue
                try:
                    stack.append(self._peek(ManufacturingBatch, step_id).output_lot_id)
                except BatchNotFound:
                    runs[step_id] = self._peek(PackagingRun, step_id)
        return sorted(runs.values(), key=lambda r: r.batch_number)

    def _kit_states(self, kit_ids: Sequence[UUID]) -> dict[UUID, KitState]:
        """Each kit's status and place, loaded from the store (a missing kit: the site it was sent to;
        a destroyed kit: where it was destroyed)."""
        found = {}
        for kit_id in kit_ids:
            kit = self.get(Kit, kit_id)
            place = kit.location_id or kit.destination_id or kit.destroyed_at_id
            if place is None and kit.status == KitStatus.MISSING and kit.shipment_id is not None:
                place = self._peek(Shipment, kit.shipment_id).to_id
            found[kit_id] = KitState(
                kit.id, kit.gtin, kit.kit_number, str(kit.status), place, kit.shipment_id, kit.expires_on
            )
        return found

    def _recall_places(self, kits: Sequence[KitState]) -> dict[str, dict[str, str]]:
        """Name, kind and country of each place holding affected kits."""
        places = {}
        for place_id in {k.place_id for k in kits if k.place_id is not None}:
            loc = self._peek(Location, place_id)
            places[str(place_id)] = {
                "name": loc.name,
                "kind": str(loc.kind),
                "country": loc.country,
                "gln": loc.gln,
            }
        return dict(sorted(places.items()))

    @staticmethod
    def _in_transit(kits: Sequence[KitState]) -> list[dict[str, Any]]:
        """Shipments in transit carrying affected kits: flagged in the recall's record."""
        by_shipment: dict[tuple[str, str], int] = {}
        for k in kits:
            if k.status == KitStatus.IN_TRANSIT and k.shipment_id is not None:
                key = (str(k.shipment_id), str(k.place_id))
                by_shipment[key] = by_shipment.get(key, 0) + 1
        return [{"shipment_id": s, "to_id": to, "kits": n} for (s, to), n in sorted(by_shipment.items())]

    # --- shared checks ---------------------------------------------------------------------------------

    def _qa_signature(
        self, actor: Actor, signature: Signature | None, meaning: Meaning, action: str
    ) -> Signature:
        require_role(actor, action, Role.QA)
        sig = require_signature(signature, meaning, action)
        _require_own(actor, sig)
        return sig

    def _require_place(self, location_id: UUID, *kinds: LocationKind) -> Location:
        loc = self._peek(Location, location_id)
        if loc.kind not in kinds:
            raise InvalidInput(
                f"{loc.name} is a {loc.kind}; expected {' or '.join(str(k) for k in kinds)}",
                field="location_id",
            )
        return loc

    def _run_checked(self, run_id: UUID, cache: dict[UUID, PackagingRun]) -> PackagingRun:
        """The kit's packaging run, after checking nothing upstream was recalled or rejected."""
        if run_id not in cache:
            run = self._peek(PackagingRun, run_id)
            self._require_upstream_clean(run_id, run)
            cache[run_id] = run
        return cache[run_id]

    def _require_upstream_clean(self, run_id: UUID, run: PackagingRun | None = None) -> None:
        """A recall or rejection of any lot upstream of the run stops its kits."""
        for lot_id in self._upstream_lot_ids(run_id, run):
            lot = self._peek(Lot, lot_id)
            if lot.status in (LotStatus.RECALLED, LotStatus.REJECTED):
                raise LotNotUsable(lot.id, lot.lot_number, f"an upstream lot is {lot.status}")

    def _upstream_lot_ids(self, run_id: UUID, run: PackagingRun | None = None) -> tuple[UUID, ...]:
        """Every lot upstream of a run. Fixed once the run is packaged, so remembered per process."""
        if run_id not in self._upstream:
            run = run or self._peek(PackagingRun, run_id)
            seen: dict[UUID, None] = {}
            stack = list(run.input_lot_ids)
            while stack:
                lot_id = stack.pop()
                if lot_id in seen:
                    continue
                seen[lot_id] = None
                lot = self._peek(Lot, lot_id)
                if lot.produced_by_batch_id is not None:
                    stack.extend(self._peek(ManufacturingBatch, lot.produced_by_batch_id).input_lot_ids)
            self._upstream[run_id] = tuple(seen)
        return self._upstream[run_id]

    def _kits_at(self, location_id: UUID, kit_ids: Sequence[UUID], action: str) -> list[Kit]:
        kits = [self.get(Kit, k) for k in _unique(kit_ids)]
        wrong = [
            {"kit_id": str(k.id), "kit_number": k.kit_number, "reason": "not at this location"}
            for k in kits
            if k.location_id != location_id
        ]
        if wrong:
            raise KitsNotUsable(action, wrong)
        return kits

    @staticmethod
    def _each(kits: Sequence[Kit], action: str, step: Any) -> None:
        problems = []
        for kit in kits:
            try:
                step(kit)
            except LedgerError as e:
                problems.append(_problem(kit.id, kit.kit_number, e))
        if problems:
            raise KitsNotUsable(action, problems)


def _require_own(actor: Actor, sig: Signature) -> None:
    """A signature belongs to the person doing the step (21 CFR 11.70: linked to its record)."""
    if sig.signer != actor.principal:
        raise InvalidInput("the signature must be the acting user's own", field="signature")


def _reason(reason: str | None) -> str:
    if not reason or not reason.strip():
        raise InvalidInput("this step needs a reason", field="reason")
    return reason.strip()


def _choice(kind: Any, value: Any, field: str) -> Any:
    """`value` as a member of the enum `kind`, or InvalidInput naming the allowed values."""
    try:
        return kind(value)
    except ValueError:
        raise InvalidInput(f"{field} is one of {', '.join(kind)}, not {value!r}", field=field) from None


def _country(code: str) -> str:
    if not (isinstance(code, str) and len(code) == 2 and code.isalpha() and code.isupper()):
        raise InvalidInput(f"country must be an ISO 3166 alpha-2 code, got {code!r}", field="country")
    return code


def _day(audit: dict[str, Any]) -> date:
    return datetime.fromisoformat(audit["occurred_at"]).date()


def _unique(ids: Sequence[UUID]) -> list[UUID]:
    if not ids:
        raise InvalidInput("name at least one kit", field="kit_ids")
    if len(set(ids)) != len(ids):
        raise InvalidInput("each kit is listed once", field="kit_ids")
    return list(ids)


def _refuse_all(recall: Recall, action: str, problems: list[tuple[UUID, LedgerError]], kits: int) -> None:
    """Refuse a recall step over kits: a one-kit step with the kit's own error, a step over several
    kits with every refused kit named."""
    if problems and kits == 1:
        raise problems[0][1]
    if problems:
        raise KitsNotUsable(action, [_problem(k, recall.kit_number(k), e) for k, e in problems])


def _problem(kit_id: UUID, kit_number: str, e: LedgerError) -> dict[str, str]:
    """One refused kit of a multi-kit step: which kit, which rule (code) and why."""
    return {"kit_id": str(kit_id), "kit_number": kit_number, "code": e.code, "reason": e.message}


def _business_key(a: LedgerAggregate) -> str:
    for attr in ("kit_number", "lot_number", "batch_number", "shipment_number", "gln", "code"):
        if hasattr(a, attr):
            return str(getattr(a, attr))
    return str(a.id)


__all__ = ["Arm", "Ledger", "OutputLot", "Written", "now"]
