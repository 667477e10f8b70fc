"""Distribution and QA on kits: shipments from a depot, quarantine decisions, destruction authorisation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from ledger import gs1
from ledger.application.core import Ledger, handles
from ledger.application.rules import day, each, problem, reason, unique
from ledger.commands import AuthoriseDestruction, DecideQuarantine, ReceiveReturnedKits, Recorded, Ship
from ledger.domain import Kit, Location, LocationKind, PackagingRun, Shipment, SiteStatus, Trial
from ledger.domain.base import require_role, stamp
from ledger.domain.recall import Recall, RecallStatus
from ledger.errors import InvalidInput, KitNotFound, KitsNotUsable, KitUnderRecall, LedgerError, SiteNotActive
from ledger.values import Actor, Meaning, Role


@handles(Ship)
def ship(ledger: Ledger, actor: Actor, cmd: Ship) -> Recorded:
    """Ship released kits from a depot to an activated site, or kits between depots (a transfer of
    stock: no country release needed, the receiving depot takes them into stock); every kit is
    checked, all or nothing."""
    require_role(actor, "ship kits", Role.DEPOT, at=cmd.from_id)
    shipment_number = gs1.gs1_text(cmd.shipment_number, "shipment number", "shipment_number")
    sscc = gs1.sscc(cmd.sscc)
    unique(cmd.kit_ids)
    if cmd.min_celsius >= cmd.max_celsius:
        raise InvalidInput("min_celsius must be below max_celsius", field="min_celsius")
    ledger.require_place(cmd.from_id, LocationKind.DEPOT, LocationKind.MANUFACTURING_SITE, field="from_id")
    if cmd.to_id == cmd.from_id:
        raise InvalidInput("a shipment goes to another place", field="to_id")
    site = ledger.peek(Location, cmd.to_id)
    runs: dict[UUID, PackagingRun] = {}
    if site.kind == LocationKind.DEPOT:
        # A transfer: any kit available at the sender, unexpired, made from nothing recalled or
        # rejected; released or not (a depot holds stock awaiting release too).
        audit = stamp(actor, cmd.occurred_at)
        today = day(audit)

        def usable(kit: Kit) -> None:
            kit.require_not_expired_by(kit.expires_on, today, "expiry")
            ledger.run_checked(kit.packaging_run_id, runs)

        return _ship_kits(ledger, cmd, audit, shipment_number, sscc, usable)
    if not site.is_clinical_site:
        raise InvalidInput(f"{site.name} is neither a clinical site nor a depot", field="to_id")
    if site.status != SiteStatus.ACTIVATED:
        raise SiteNotActive(site.id, site.name, str(site.status))
    trial = ledger.peek(Trial, site.trial_id) if site.trial_id else None
    audit = stamp(actor, cmd.occurred_at)
    site.require_active_at(audit["occurred_at"])
    today = day(audit)

    def releasable(kit: Kit) -> None:
        if trial is None or kit.trial_id != trial.id:
            raise InvalidInput(f"kit {kit.kit_number} belongs to another trial", field="kit_ids")
        kit.require_not_expired_by(trial.last_ship_date(kit.expires_on), today, "do-not-ship")
        run = ledger.run_checked(kit.packaging_run_id, runs)
        run.require_released_for(site.country, at=audit["occurred_at"])

    return _ship_kits(ledger, cmd, audit, shipment_number, sscc, releasable)


def _ship_kits(
    ledger: Ledger,
    cmd: Ship,
    audit: dict[str, Any],
    shipment_number: str,
    sscc: str,
    check: Callable[[Kit], None],
) -> Recorded:
    """Ship every kit that passes the destination's `check`; refuse the whole step naming every kit
    that does not; record the shipment with its kits."""
    shipment_id = Shipment.create_id(shipment_number)
    kits, problems = [], []
    loaded = ledger.load_many(Kit, cmd.kit_ids)
    for kit_id in cmd.kit_ids:
        kit_number = str(kit_id)
        try:
            kit = loaded.get(kit_id) or _missing(kit_id)
            kit_number = kit.kit_number
            check(kit)
            kit.ship(audit, shipment_id, cmd.from_id, cmd.to_id)
            kits.append(kit)
        except LedgerError as e:
            problems.append(problem(kit_id, kit_number, e))
    if problems:
        raise KitsNotUsable("ship", problems)
    shipment = Shipment(
        shipment_number=shipment_number,
        audit=audit,
        sscc=sscc,
        from_id=cmd.from_id,
        to_id=cmd.to_id,
        kit_ids=[k.id for k in kits],
        kit_numbers=[k.kit_number for k in kits],
        min_celsius=cmd.min_celsius,
        max_celsius=cmd.max_celsius,
        logger_id=cmd.logger_id,
        carrier=cmd.carrier,
    )
    return ledger.record(shipment, *kits, created=(shipment.id,))


@handles(DecideQuarantine)
def decide_quarantine(ledger: Ledger, actor: Actor, cmd: DecideQuarantine) -> Recorded:
    """QA's decision on quarantined kits: back to use, or rejected (damaged)."""
    meaning = Meaning.RELEASED if cmd.release else Meaning.REJECTED
    sig = ledger.qa_signature(actor, cmd.signature, meaning, "decide on quarantined kits")
    audit = stamp(actor, cmd.occurred_at, reason(cmd.reason))
    kits = ledger.get_many(Kit, unique(cmd.kit_ids))
    each(kits, "decide quarantine", lambda k: k.decide_quarantine(audit, sig.as_dict(), cmd.release))
    return ledger.record(*kits)


@handles(AuthoriseDestruction)
def authorise_destruction(ledger: Ledger, actor: Actor, cmd: AuthoriseDestruction) -> Recorded:
    """Written, signed authorisation (EU Annex 13 §48) before any kit is destroyed."""
    sig = ledger.qa_signature(actor, cmd.signature, Meaning.AUTHORISED_DESTRUCTION, "authorise destruction")
    audit = stamp(actor, cmd.occurred_at, reason(cmd.reason))
    kits = ledger.get_many(Kit, unique(cmd.kit_ids))
    each(kits, "authorise destruction", lambda k: k.authorise_destruction(audit, sig.as_dict()))
    return ledger.record(*kits)


@handles(ReceiveReturnedKits)
def receive_returned_kits(ledger: Ledger, actor: Actor, cmd: ReceiveReturnedKits) -> Recorded:
    """The depot receives kits a site sent back outside a recall: held there, `returned`, until QA
    decides. A kit sent back under a recall is received through the recall, which records it."""
    require_role(actor, "receive returned kits", Role.DEPOT, at=cmd.depot_id)
    ledger.require_place(cmd.depot_id, LocationKind.DEPOT, field="depot_id")
    audit = stamp(actor, cmd.occurred_at)
    kits = ledger.get_many(Kit, unique(cmd.kit_ids))
    each(kits, "receive back", lambda k: _sent_back_outside_a_recall(ledger, k))
    each(kits, "receive back", lambda k: k.receive_back(audit, cmd.depot_id))
    return ledger.record(*kits)


def _sent_back_outside_a_recall(ledger: Ledger, kit: Kit) -> None:
    if kit.returning_from is not None and kit.recall_number is not None:
        recall = ledger.peek(Recall, Recall.create_id(kit.recall_number))
        if recall.status == RecallStatus.OPEN:
            raise KitUnderRecall(
                kit.kit_number, recall.recall_number, recall.id, "receive it",
                f"POST /recalls/{recall.id}/returns",
            )


def _missing(kit_id: UUID) -> Kit:
    raise KitNotFound(kit_id)
