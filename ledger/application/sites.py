"""At a site (or depot): receipt of a shipment per kit, storage excursions, dispensing, returns and
destruction where the kits are held."""

from __future__ import annotations

import base64

from ledger import gs1, site_keys
from ledger.application.core import Ledger, handles
from ledger.application.rules import day, each, reason, unique
from ledger.commands import (
    ConfirmReceipt,
    DestroyKits,
    Dispense,
    Recorded,
    ReportExcursion,
    ReturnKit,
    ReturnToDepot,
)
from ledger.domain import Kit, KitStatus, Location, LocationKind, Shipment, Trial
from ledger.domain.base import require_role, stamp
from ledger.domain.kit import ReceiptOutcome
from ledger.errors import (
    InvalidInput,
    KitsNotUsable,
    KitUnderRecall,
    ReceiptMismatch,
    SiteSignatureRefused,
    WrongSite,
)
from ledger.site_keys import SiteSignature
from ledger.values import Actor, Role


@handles(ConfirmReceipt)
def confirm_receipt(ledger: Ledger, actor: Actor, cmd: ConfirmReceipt) -> Recorded:
    """The receipt of a shipment where it went, per kit number: received, damaged or missing; an
    excursion quarantines. A site receives kits for its subjects; a depot (a transfer from another
    depot) takes them into stock, available to ship again.

    With `site_signature`, the site's own Ed25519 signature over the confirmation
    (`ledger.site_keys.receipt_message`) is verified against the site's registered key before
    anything is recorded, and kept in the event.
    """
    require_role(actor, "confirm a receipt", Role.SITE, Role.DEPOT, at=cmd.site_id)
    shipment = ledger.get(Shipment, cmd.shipment_id)
    if shipment.to_id != cmd.site_id:
        raise WrongSite(shipment.shipment_number, cmd.site_id)
    into_stock = ledger.peek(Location, shipment.to_id).kind == LocationKind.DEPOT
    require_role(actor, "confirm a receipt at a " + ("depot" if into_stock else "site"),
                 Role.DEPOT if into_stock else Role.SITE)
    if cmd.site_signature is not None and cmd.occurred_at is None:
        raise InvalidInput("a site-signed receipt states the occurred_at it signed", field="occurred_at")
    audit = stamp(actor, cmd.occurred_at)
    known = dict(zip(shipment.kit_numbers, shipment.kit_ids, strict=True))
    problems = []
    parsed: dict[str, ReceiptOutcome] = {}
    for number, outcome in cmd.outcomes.items():
        if number not in known:
            problems.append({"kit_number": number, "reason": "not in this shipment"})
            continue
        try:
            parsed[number] = ReceiptOutcome(outcome)
        except ValueError:
            problems.append(
                {"kit_number": number, "reason": f"outcome {outcome!r} is not received, damaged or missing"}
            )
    for number in known:
        if number not in cmd.outcomes:
            problems.append({"kit_number": number, "reason": "not accounted for in the receipt"})
    for number in cmd.remarks:
        if parsed.get(number) not in (ReceiptOutcome.DAMAGED, ReceiptOutcome.MISSING):
            why = "a remark is for a kit received damaged or missing"
            problems.append({"kit_number": number, "reason": why})
    if problems:
        raise ReceiptMismatch(shipment.shipment_number, problems)
    if cmd.logger_min is not None and cmd.logger_max is not None and cmd.logger_min > cmd.logger_max:
        raise InvalidInput(
            f"the logger's maximum {cmd.logger_max} °C is below its minimum {cmd.logger_min} °C",
            field="logger_max",
        )
    excursion = shipment.is_excursion(cmd.logger_min, cmd.logger_max)
    confirmed = {n: str(o) for n, o in parsed.items()}
    signed = None
    if cmd.site_signature is not None:
        shipment.require_in_transit()  # a replay of an accepted receipt fails here, as a replay
        _verify_site_signature(ledger, shipment, cmd, confirmed, audit["occurred_at"])
        signed = cmd.site_signature.as_dict()
    remarks = dict(sorted(cmd.remarks.items()))
    shipment.confirm_receipt(audit, confirmed, cmd.logger_min, cmd.logger_max, excursion, signed, remarks)
    kits = ledger.get_many(Kit, [known[number] for number in parsed])
    for kit, outcome in zip(kits, parsed.values(), strict=True):
        kit.receive(audit, shipment.id, shipment.to_id, outcome, excursion, into_stock)
    return ledger.record(shipment, *kits, excursion=excursion)


def _verify_site_signature(
    ledger: Ledger, shipment: Shipment, cmd: ConfirmReceipt, outcomes: dict[str, str], occurred_at: str
) -> None:
    signature: SiteSignature | None = cmd.site_signature
    assert signature is not None
    site_keys.require_nonce(signature.nonce)
    site = ledger.peek(Location, shipment.to_id)
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
        logger_min=cmd.logger_min,
        logger_max=cmd.logger_max,
        occurred_at=occurred_at,
        nonce=signature.nonce,
        remarks=cmd.remarks,
    )
    site_keys.verify_site_signature(
        base64.b64decode(key), signature, message, shipment=shipment.shipment_number, site_id=site.id
    )


@handles(ReportExcursion)
def report_excursion(ledger: Ledger, actor: Actor, cmd: ReportExcursion) -> Recorded:
    """A temperature excursion in storage: the kits held at the place go to quarantine until QA decides."""
    require_role(actor, "report an excursion", Role.SITE, Role.DEPOT, at=cmd.location_id)
    if cmd.min_celsius > cmd.max_celsius:
        raise InvalidInput(
            f"the maximum {cmd.max_celsius} °C is below the minimum {cmd.min_celsius} °C", field="max_celsius"
        )
    audit = stamp(actor, cmd.occurred_at)
    excursion = {
        "location_id": str(cmd.location_id),
        "min_celsius": str(cmd.min_celsius),
        "max_celsius": str(cmd.max_celsius),
        "duration_minutes": cmd.duration_minutes,
    }
    kits = ledger.get_many(Kit, unique(cmd.kit_ids))
    wrong = [
        {"kit_id": str(k.id), "kit_number": k.kit_number, "reason": "not at this location"}
        for k in kits
        if k.location_id != cmd.location_id
    ]
    if wrong:
        raise KitsNotUsable("quarantine", wrong)
    each(kits, "quarantine", lambda k: k.quarantine(audit, excursion))
    return ledger.record(*kits)


@handles(Dispense)
def dispense(ledger: Ledger, actor: Actor, cmd: Dispense) -> Recorded:
    """Dispense a received kit to a pseudonymous subject, inside the do-not-dispense window."""
    require_role(actor, "dispense a kit", Role.SITE, at=cmd.site_id)
    subject = gs1.gs1_text(cmd.subject, "subject number", "subject", max_len=40)
    kit = ledger.get(Kit, cmd.kit_id)
    audit = stamp(actor, cmd.occurred_at)
    kit.require_at(cmd.site_id, "dispense")  # first: nothing of a kit held elsewhere is told
    trial = ledger.peek(Trial, kit.trial_id)
    kit.require_status("dispense", KitStatus.RECEIVED)
    kit.require_not_expired_by(trial.last_dispense_date(kit.expires_on), day(audit), "do-not-dispense")
    ledger.require_upstream_clean(kit.packaging_run_id)
    kit.dispense(audit, cmd.site_id, subject)
    return ledger.record(kit)


@handles(ReturnKit)
def return_kit(ledger: Ledger, actor: Actor, cmd: ReturnKit) -> Recorded:
    """A subject returned a kit to the site: used, unused or partially used."""
    require_role(actor, "return a kit", Role.SITE, at=cmd.site_id)
    kit = ledger.get(Kit, cmd.kit_id)
    kit.return_(stamp(actor, cmd.occurred_at), cmd.site_id, cmd.condition)
    return ledger.record(kit)


@handles(ReturnToDepot)
def return_to_depot(ledger: Ledger, actor: Actor, cmd: ReturnToDepot) -> Recorded:
    """The site sends kits it holds back to a depot, outside any recall, with the reason; a kit of an
    open recall goes back through the recall (reported `returned`), which records it."""
    require_role(actor, "send kits back", Role.SITE, at=cmd.site_id)
    ledger.require_place(cmd.depot_id, LocationKind.DEPOT, field="depot_id")
    audit = stamp(actor, cmd.occurred_at, reason(cmd.reason))
    kits = ledger.get_many(Kit, unique(cmd.kit_ids))
    each(kits, "send back", lambda k: k.require_at(cmd.site_id, "send back"))  # nothing of kits elsewhere
    through = f"sites/{cmd.site_id}/reports"
    each(kits, "send back", lambda k: _not_under_recall(ledger, k, "send it back", through))
    each(kits, "send back", lambda k: k.send_back(audit, cmd.site_id, cmd.depot_id, None))
    return ledger.record(*kits)


@handles(DestroyKits)
def destroy_kits(ledger: Ledger, actor: Actor, cmd: DestroyKits) -> Recorded:
    """Destroy kits held at the place, whose destruction QA authorised, with the certificate; a kit
    held elsewhere is refused."""
    require_role(actor, "destroy kits", Role.DEPOT, Role.SITE, at=cmd.location_id)
    certificate, method = cmd.certificate.strip(), cmd.method.strip()
    if not certificate:
        raise InvalidInput("destruction needs the destruction certificate number", field="certificate")
    if not method:
        raise InvalidInput("destruction names its method", field="method")
    audit = stamp(actor, cmd.occurred_at)
    kits = ledger.get_many(Kit, unique(cmd.kit_ids))
    each(kits, "destroy", lambda k: k.require_at(cmd.location_id, "destroy"))  # nothing of kits elsewhere
    each(kits, "destroy", lambda k: _not_under_recall(ledger, k, "destroy it", "destructions"))
    each(kits, "destroy", lambda k: k.destroy(audit, cmd.location_id, certificate, method))
    return ledger.record(*kits)


def _not_under_recall(ledger: Ledger, kit: Kit, step: str, route: str) -> None:
    """A kit an open recall holds takes its steps through the recall, which reconciles it: `step`
    through `POST /recalls/{id}/<route>`."""
    recall = ledger.open_recall_of(kit)
    if recall is not None:
        raise KitUnderRecall(
            kit.kit_number, recall.recall_number, recall.id, step, f"POST /recalls/{recall.id}/{route}"
        )
