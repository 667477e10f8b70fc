"""Packaging into blinded kits and release for clinical use: QA disposition, QP certification,
sponsor release per country, expiry extension by relabelling."""

from __future__ import annotations

from typing import Any

from ledger import gs1
from ledger.application.core import Ledger, handles
from ledger.application.rules import country, day, reason, require_own
from ledger.commands import (
    CertifyPackaging,
    DisposePackaging,
    ExtendExpiry,
    Package,
    Recorded,
    SponsorRelease,
)
from ledger.domain import Kit, LocationKind, Lot, LotKind, PackagingRun, Trial
from ledger.domain.base import require_role, stamp
from ledger.domain.kit import RELABELLABLE
from ledger.errors import InvalidInput, LotNotUsable
from ledger.values import Actor, Meaning, Quantity, Role, require_signature


@handles(Package)
def package(ledger: Ledger, actor: Actor, cmd: Package) -> Recorded:
    """Package drug-product units into blinded kits per the kit list (kit number, treatment)."""
    require_role(actor, "package kits", Role.MANUFACTURING, at=cmd.location_id)
    if cmd.checked_by.principal == actor.principal:
        raise InvalidInput("the second-person check must be done by someone else", field="checked_by")
    require_role(cmd.checked_by, "check packaging", Role.MANUFACTURING, Role.QA, at=cmd.location_id)
    batch_number = gs1.gs1_text(cmd.batch_number, "batch number", "batch_number")
    kit_gtin = gs1.gtin(cmd.kit_gtin, "kit_gtin")
    trial = ledger.peek(Trial, cmd.trial_id)  # checked, not changed: the kept view
    ledger.require_place(cmd.location_id, LocationKind.MANUFACTURING_SITE, LocationKind.DEPOT)
    numbers = [gs1.gs1_text(e.kit_number, "kit number", "kit_list") for e in cmd.kit_list]
    if len(set(numbers)) != len(numbers):
        raise InvalidInput("kit numbers in a kit list are unique", field="kit_list")
    by_arm: dict[str, int] = {}
    for entry in cmd.kit_list:
        by_arm[entry.treatment] = by_arm.get(entry.treatment, 0) + 1
    if set(by_arm) != {a.treatment for a in cmd.arms} or len(cmd.arms) != len(by_arm):
        raise InvalidInput("every treatment in the kit list needs exactly one arm", field="arms")
    audit = stamp(actor, cmd.occurred_at)
    today = day(audit)
    run_id = PackagingRun.create_id(batch_number)
    lots: list[Lot] = []
    inputs: list[dict[str, Any]] = []
    arm_records: list[dict[str, Any]] = []

    def take(lot: Lot, qty: Quantity) -> None:
        lot.require_usable(today)
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

    for arm in cmd.arms:
        count = by_arm[arm.treatment]
        PackagingRun.reconcile_arm(
            arm.treatment, count, arm.units_per_kit, arm.units_issued, arm.samples, arm.rejects
        )
        lot = ledger.get(Lot, arm.dp_lot_id)
        lot.require_at(cmd.location_id, "packaging with it")  # first: nothing said of a lot elsewhere
        if lot.kind != LotKind.DRUG_PRODUCT:
            raise LotNotUsable(lot.id, lot.lot_number, "only drug-product lots fill kits")
        take(lot, Quantity.of(arm.units_issued, "unit", "units_issued"))
        arm_records.append(
            {
                "treatment": arm.treatment,
                "dp_lot_id": lot.id,
                "kits": count,
                "units_per_kit": arm.units_per_kit,
                "units_issued": arm.units_issued,
                "samples": arm.samples,
                "rejects": arm.rejects,
            }
        )
    for line in cmd.components:
        lot = ledger.get(Lot, line.lot_id)
        lot.require_at(cmd.location_id, "packaging with it")
        if lot.kind != LotKind.PACKAGING_COMPONENT:
            raise LotNotUsable(lot.id, lot.lot_number, "not a packaging component")
        take(lot, line.quantity)
    if len({lot.id for lot in lots}) != len(lots):
        raise InvalidInput("each input lot is listed once", field="components")
    # A blinded kit's expiry is the earliest of what went in, the same for every arm.
    expiry = min(lot.use_by() for lot in lots)
    if expiry <= today:
        raise InvalidInput(f"kits would expire on {expiry}, before they are packaged", field="arms")
    run = PackagingRun(
        batch_number=batch_number,
        audit=audit,
        trial_id=trial.id,
        location_id=cmd.location_id,
        kit_gtin=kit_gtin,
        label_version=cmd.label_version,
        expires_on=expiry,
        inputs=inputs,
        arms=arm_records,
        samples=sum(a.samples for a in cmd.arms),
        rejects=sum(a.rejects for a in cmd.arms),
        kit_numbers=numbers,
        allocation={e.kit_number: e.treatment for e in cmd.kit_list},
        performed_by=actor.as_dict(),
        checked_by=cmd.checked_by.as_dict(),
    )
    kits = [
        Kit.commission(
            gtin=kit_gtin,
            kit_number=n,
            audit=audit,
            trial_id=trial.id,
            packaging_run_id=run.id,
            batch_number=batch_number,
            label_version=cmd.label_version,
            expires_on=expiry,
            location_id=cmd.location_id,
        )
        for n in numbers
    ]
    return ledger.record(run, *lots, *kits, created=(run.id,))


@handles(DisposePackaging)
def dispose_packaging(ledger: Ledger, actor: Actor, cmd: DisposePackaging) -> Recorded:
    """QA's disposition; a release is followed by a signed checkpoint where the ledger has a log."""
    meaning = Meaning.RELEASED if cmd.released else Meaning.REJECTED
    sig = ledger.qa_signature(actor, cmd.signature, meaning, "dispose a packaged batch")
    run = ledger.get(PackagingRun, cmd.run_id)
    if cmd.released:
        ledger.require_upstream_clean(run.id, run)
    run.dispose(stamp(actor, cmd.occurred_at, cmd.reason), sig.as_dict(), cmd.released)
    recorded = ledger.record(run)
    if cmd.released:
        ledger.released(recorded)
    return recorded


@handles(CertifyPackaging)
def certify_packaging(ledger: Ledger, actor: Actor, cmd: CertifyPackaging) -> Recorded:
    require_role(actor, "certify a batch", Role.QP)
    sig = require_signature(cmd.signature, Meaning.CERTIFIED, "QP certification")
    require_own(actor, sig)
    run = ledger.get(PackagingRun, cmd.run_id)
    run.certify(stamp(actor, cmd.occurred_at), sig.as_dict())
    return ledger.record(run)


@handles(SponsorRelease)
def sponsor_release(ledger: Ledger, actor: Actor, cmd: SponsorRelease) -> Recorded:
    sig = ledger.qa_signature(actor, cmd.signature, Meaning.SPONSOR_RELEASED, "sponsor-release a batch")
    run = ledger.get(PackagingRun, cmd.run_id)
    trial = ledger.peek(Trial, run.trial_id)
    if country(cmd.country) not in trial.countries:
        raise InvalidInput(f"trial {trial.code} does not run in {cmd.country}", field="country")
    run.release_for_country(stamp(actor, cmd.occurred_at), sig.as_dict(), cmd.country)
    return ledger.record(run)


@handles(ExtendExpiry)
def extend_expiry(ledger: Ledger, actor: Actor, cmd: ExtendExpiry) -> Recorded:
    """Relabel every kit of a run still in the supply chain with a later, supported expiry."""
    sig = ledger.qa_signature(actor, cmd.signature, Meaning.RELABELLED, "extend expiry")
    run = ledger.get(PackagingRun, cmd.run_id)
    audit = stamp(actor, cmd.occurred_at, reason(cmd.reason))
    supported = min(ledger.get(Lot, lot_id).expires_on for lot_id in run.input_lot_ids)
    run.extend_expiry(audit, sig.as_dict(), cmd.new_expiry, supported)
    kits = ledger.get_many(Kit, [Kit.create_id(run.kit_gtin, n) for n in run.kit_numbers])
    relabelled = [k for k in kits if k.status in RELABELLABLE]
    for kit in relabelled:
        kit.relabel(audit, run.batch_number, cmd.new_expiry)
    return ledger.record(run, *relabelled)
