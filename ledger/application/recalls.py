"""Recall campaigns: open (the affected set recorded as it is), acknowledge, report kits, receive
returns, destroy, justify, close. Every step but the opening runs on the recall's kept write copy
(`Ledger.on_recall`), re-checked if it lost a race with another writer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from ledger import gs1
from ledger.application.core import Ledger, handles
from ledger.application.rules import day, problem, reason, unique
from ledger.commands import (
    AcknowledgeRecall,
    CloseRecall,
    DestroyRecalledKits,
    JustifyUnaccounted,
    OpenRecall,
    ReceiveRecallReturns,
    Recorded,
    ReportRecallKits,
)
from ledger.domain import Kit, KitStatus, Location, LocationKind, Lot, PackagingRun, Shipment
from ledger.domain.base import require_role, stamp
from ledger.domain.recall import KitOutcome, KitReport, KitState, Recall, group_kits, in_scope
from ledger.errors import InvalidInput, KitNotFound, KitNotInRecall, KitsNotUsable, LedgerError
from ledger.values import Actor, Meaning, Role


@handles(OpenRecall)
def open_recall(ledger: Ledger, actor: Actor, cmd: OpenRecall) -> Recorded:
    """Open a recall: recall the lots and record every kit downstream, as it is now, in one write (a
    mock recall records the same, and recalls nothing).

    The kits' current status and place come in bulk from the ledger's kit-state reader (a caught-up
    read model, see `Ledger.use_kit_states`); without one each kit is loaded from the store.
    """
    sig = ledger.qa_signature(actor, cmd.signature, Meaning.APPROVED, "open a recall")
    recall_number = gs1.gs1_text(cmd.recall_number, "recall number", "recall_number")
    if not cmd.lot_ids and not cmd.run_ids:
        raise InvalidInput("a recall names its suspect lots or packaging runs, at least one", field="lot_ids")
    if len(set(cmd.lot_ids)) != len(cmd.lot_ids):
        raise InvalidInput("a recall names each suspect lot once", field="lot_ids")
    if len(set(cmd.run_ids)) != len(cmd.run_ids):
        raise InvalidInput("a recall names each suspect packaging run once", field="run_ids")
    audit = stamp(actor, cmd.occurred_at, reason(cmd.reason))
    lots = [ledger.get(Lot, lot_id) for lot_id in cmd.lot_ids]
    suspect_runs = [ledger.get(PackagingRun, run_id) for run_id in cmd.run_ids]
    if not cmd.exercise:  # a mock recall recalls nothing: no stock is blocked
        for lot in lots:
            lot.recall(audit, sig.as_dict(), recall_number)
        for run in suspect_runs:
            run.recall(audit, sig.as_dict(), recall_number)
    downstream = ledger.runs_downstream(cmd.lot_ids) if cmd.lot_ids else []
    reached = {r.id for r in downstream}
    named = [r for r in suspect_runs if r.id not in reached]
    runs = sorted([*downstream, *named], key=lambda r: r.batch_number)
    kit_ids = [Kit.create_id(r.kit_gtin, n) for r in runs for n in r.kit_numbers]
    reader, source = ledger.kit_states()
    states = (reader or (lambda ids: _kit_states(ledger, ids)))(kit_ids)
    if reader is not None and isinstance(source.get("as_of"), int):
        # A kit that moved after the read model's position (say, shipped meanwhile) makes the recorded
        # affected set wrong: the write is refused and the opening runs again on newer states.
        ledger.expect_quiet_since(source["as_of"], kit_ids)
    missing = [k for k in kit_ids if k not in states]
    if missing:
        raise KitNotFound(missing[0])
    affected = [states[k] for k in kit_ids if in_scope(states[k], cmd.scope, day(audit))]
    recall = Recall(
        recall_number=recall_number,
        audit=audit,
        signature=sig.as_dict(),
        lots=[{"lot_id": str(lt.id), "lot_number": lt.lot_number, "gtin": lt.gtin} for lt in lots],
        suspect_runs=[{"run_id": str(r.id), "batch_number": r.batch_number} for r in suspect_runs],
        classification=str(cmd.classification),
        scope=str(cmd.scope),
        runs=[
            {"run_id": str(r.id), "batch_number": r.batch_number, "kits": str(len(r.kit_numbers))}
            for r in runs
        ],
        places=_recall_places(ledger, affected),
        kit_groups=group_kits(affected),
        shipments_in_transit=_in_transit(affected),
        source=source,
        exercise=cmd.exercise,
    )
    recalled = [] if cmd.exercise else [*lots, *suspect_runs]
    return ledger.record(recall, *recalled, created=(recall.id,), kits=len(affected))


@handles(AcknowledgeRecall)
def acknowledge_recall(ledger: Ledger, actor: Actor, cmd: AcknowledgeRecall) -> Recorded:
    """A site (or the depot) acknowledges the recall notice."""
    require_role(actor, "acknowledge a recall", Role.SITE, Role.DEPOT, at=cmd.place_id)

    def step(recall: Recall) -> Recorded:
        recall.acknowledge(stamp(actor, cmd.occurred_at), cmd.place_id)
        return ledger.record(recall)

    return ledger.on_recall(cmd.recall_id, step)


@handles(ReportRecallKits)
def report_recall_kits(ledger: Ledger, actor: Actor, cmd: ReportRecallKits) -> Recorded:
    """A place reports on kits of the recall it held, in one write (all or nothing).

    A dispensed kit must match the ledger's own record of it (status and subject), a quarantined
    one must be held at the place (not missing, in transit or dispensed) and is put in quarantine
    there, so stock answers no longer count it usable. A returned kit is sent back, in the same
    write, to the depot that shipped it: it is in transit until the depot records it received.
    With several kits, every refused kit is named.
    """
    require_role(actor, "report a recalled kit", Role.SITE, Role.DEPOT, at=cmd.place_id)
    unique([r.kit_id for r in cmd.reports])
    reports = [KitReport(r.kit_id, r.outcome, r.subject) for r in cmd.reports]

    def step(recall: Recall) -> Recorded:
        audit = stamp(actor, cmd.occurred_at)
        kits: list[Kit] = []
        problems: list[tuple[UUID, LedgerError]] = []
        for report in reports:
            try:
                recall.check_report(audit, cmd.place_id, report)
                kit = _reported_kit(ledger, audit, recall, cmd.place_id, report)
            except LedgerError as e:
                problems.append((report.kit_id, e))
                continue
            if kit is not None:
                kits.append(kit)
        _refuse_all(recall, "report", problems, len(reports))
        for report in reports:
            recall.report_kit(audit, cmd.place_id, report)
        return ledger.record(recall, *kits)

    return ledger.on_recall(cmd.recall_id, step)


def _reported_kit(
    ledger: Ledger, audit: dict[str, Any], recall: Recall, place_id: UUID, report: KitReport
) -> Kit | None:
    """Check a report against the kit's own record, and move the kit: a located kit (a mock recall) is
    held at the place or was shipped from it, and does not move; a dispensed kit was dispensed to that
    subject; a quarantined kit is held at the place and is quarantined there
    (`Kit.RecallQuarantined`); a returned kit is sent back to its depot. The kit to save, if any."""
    if report.outcome == KitOutcome.LOCATED:  # an exercise: the kit stays where it is, as it is
        seen = ledger.peek(Kit, report.kit_id)
        gone = (KitStatus.IN_TRANSIT, KitStatus.DESTROYED, KitStatus.DISPENSED, KitStatus.MISSING)
        held_here = seen.location_id == place_id and seen.status not in gone
        # stock moves on during an exercise: a kit the place shipped since is located by its shipment
        sent_on = seen.shipment_id is not None and ledger.peek(Shipment, seen.shipment_id).from_id == place_id
        if not (held_here or sent_on):
            raise InvalidInput(f"kit {seen.kit_number} is not held here to be located", field="kit_id")
        return None
    if report.outcome == KitOutcome.DISPENSED:
        seen = ledger.peek(Kit, report.kit_id)
        if seen.status != KitStatus.DISPENSED or seen.subject != report.subject:
            raise InvalidInput(
                f"the ledger records kit {seen.kit_number} as {seen.status}"
                + (f" to {seen.subject}" if seen.subject else "")
                + f", not dispensed to {report.subject}",
                field="subject",
            )
        return None
    kit = ledger.get(Kit, report.kit_id)
    if report.outcome == KitOutcome.QUARANTINED:
        return kit if kit.quarantine_for_recall(audit, place_id, recall.recall_number) else None
    if kit.shipment_id is None:
        raise InvalidInput(
            f"kit {kit.kit_number} was never shipped: the place holding it quarantines it", field="outcome"
        )
    depot_id = ledger.peek(Shipment, kit.shipment_id).from_id
    kit.send_back(audit, place_id, depot_id, recall.recall_number)
    return kit


@handles(ReceiveRecallReturns)
def receive_recall_returns(ledger: Ledger, actor: Actor, cmd: ReceiveRecallReturns) -> Recorded:
    """The depot received kits that sites sent back: they are in its hands and accounted for."""
    require_role(actor, "receive a recall return", Role.DEPOT, at=cmd.depot_id)
    ledger.require_place(cmd.depot_id, LocationKind.DEPOT, field="depot_id")
    kit_ids = unique(cmd.kit_ids)

    def step(recall: Recall) -> Recorded:
        audit = stamp(actor, cmd.occurred_at)
        kits = ledger.get_many(Kit, [k for k in kit_ids if k in recall.kits])
        problems: list[tuple[UUID, LedgerError]] = [
            (k, KitNotInRecall(recall.recall_number, k)) for k in kit_ids if k not in recall.kits
        ]
        for kit in kits:
            try:
                recall.check_return(audit, kit.id)
                kit.receive_back(audit, cmd.depot_id)
            except LedgerError as e:
                problems.append((kit.id, e))
        _refuse_all(recall, "receive as returned", problems, len(kit_ids))
        for kit_id in kit_ids:
            recall.receive_return(audit, cmd.depot_id, kit_id)
        return ledger.record(recall, *kits)

    return ledger.on_recall(cmd.recall_id, step)


@handles(DestroyRecalledKits)
def destroy_recalled_kits(ledger: Ledger, actor: Actor, cmd: DestroyRecalledKits) -> Recorded:
    """The place holding kits of the recall destroys them, after QA authorised it (signed): the kits
    are destroyed and the recall records each one as destroyed, with the certificate, at once. A
    depot destroys what came back to it or what it quarantined; a site what it quarantined there."""
    require_role(actor, "destroy recalled kits", Role.DEPOT, Role.SITE, at=cmd.place_id)
    ledger.require_place(cmd.place_id, LocationKind.DEPOT, LocationKind.CLINICAL_SITE, field="place_id")
    certificate, method = cmd.certificate.strip(), cmd.method.strip()
    if not certificate:
        raise InvalidInput("destruction needs the destruction certificate number", field="certificate")
    if not method:
        raise InvalidInput("destruction names its method", field="method")
    kit_ids = unique(cmd.kit_ids)

    def step(recall: Recall) -> Recorded:
        audit = stamp(actor, cmd.occurred_at)
        problems: list[tuple[UUID, LedgerError]] = []
        kits = []
        for kit_id in kit_ids:
            try:
                recall.require_kit(kit_id)
                kit = ledger.get(Kit, kit_id)
                kit.destroy(audit, cmd.place_id, certificate, method)
                recall.check_destroyed(audit, kit_id)
            except LedgerError as e:
                problems.append((kit_id, e))
                continue
            kits.append(kit)
        _refuse_all(recall, "destroy", problems, len(kit_ids))
        for kit_id in kit_ids:
            recall.record_destroyed(audit, cmd.place_id, kit_id, certificate, method)
        return ledger.record(recall, *kits)

    return ledger.on_recall(cmd.recall_id, step)


@handles(JustifyUnaccounted)
def justify_unaccounted(ledger: Ledger, actor: Actor, cmd: JustifyUnaccounted) -> Recorded:
    """QA's signed justification for an affected kit that cannot be accounted for."""
    sig = ledger.qa_signature(actor, cmd.signature, Meaning.APPROVED, "justify an unaccounted kit")

    def step(recall: Recall) -> Recorded:
        recall.justify(stamp(actor, cmd.occurred_at), sig.as_dict(), cmd.kit_id, cmd.justification)
        return ledger.record(recall)

    return ledger.on_recall(cmd.recall_id, step)


@handles(CloseRecall)
def close_recall(ledger: Ledger, actor: Actor, cmd: CloseRecall) -> Recorded:
    """QA closes the recall (signed): refused while any affected kit is unaccounted for."""
    sig = ledger.qa_signature(actor, cmd.signature, Meaning.APPROVED, "close a recall")

    def step(recall: Recall) -> Recorded:
        recall.close(stamp(actor, cmd.occurred_at), sig.as_dict())
        return ledger.record(recall)

    return ledger.on_recall(cmd.recall_id, step)


def _kit_states(ledger: Ledger, kit_ids: Sequence[UUID]) -> dict[UUID, KitState]:
    """Each kit's status and place, loaded from the store (a missing kit: the site it was sent to;
    a destroyed kit: where it was destroyed)."""
    found = {}
    for kit_id in kit_ids:
        kit = ledger.get(Kit, kit_id)
        place = kit.location_id or kit.destination_id or kit.destroyed_at_id
        if place is None and kit.status == KitStatus.MISSING and kit.shipment_id is not None:
            place = ledger.peek(Shipment, kit.shipment_id).to_id
        found[kit_id] = KitState(
            kit.id, kit.gtin, kit.kit_number, str(kit.status), place, kit.shipment_id, kit.expires_on
        )
    return found


def _recall_places(ledger: Ledger, kits: Sequence[KitState]) -> dict[str, dict[str, str]]:
    """Name, kind and country of each place holding affected kits."""
    places = {}
    for place_id in {k.place_id for k in kits if k.place_id is not None}:
        loc = ledger.peek(Location, place_id)
        places[str(place_id)] = {
            "name": loc.name,
            "kind": str(loc.kind),
            "country": loc.country,
            "gln": loc.gln,
        }
    return dict(sorted(places.items()))


def _in_transit(kits: Sequence[KitState]) -> list[dict[str, Any]]:
    """Shipments in transit carrying affected kits: flagged in the recall's record."""
    by_shipment: dict[tuple[str, str], int] = {}
    for k in kits:
        if k.status == KitStatus.IN_TRANSIT and k.shipment_id is not None:
            key = (str(k.shipment_id), str(k.place_id))
            by_shipment[key] = by_shipment.get(key, 0) + 1
    return [{"shipment_id": s, "to_id": to, "kits": n} for (s, to), n in sorted(by_shipment.items())]


def _refuse_all(recall: Recall, action: str, problems: list[tuple[UUID, LedgerError]], kits: int) -> None:
    """Refuse a recall step over kits: a one-kit step with the kit's own error, a step over several
    kits with every refused kit named."""
    if problems and kits == 1:
        raise problems[0][1]
    if problems:
        raise KitsNotUsable(action, [problem(k, recall.kit_number(k), e) for k, e in problems])
