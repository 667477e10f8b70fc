"""The ledger's errors: one base class, one subclass per broken rule, each carrying the ids a person needs."""

from __future__ import annotations

from decimal import Decimal
from typing import Any


class LedgerError(Exception):
    """Base of every business-rule error; `code` is a stable machine-readable name."""

    code = "ledger_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            **{k: (str(v) if isinstance(v, Decimal) else v) for k, v in self.details.items()},
        }


class NotReady(LedgerError):
    """A store, or its read models, that a command needs and that is not there yet at this release's
    schema: the message names the command that makes it."""

    code = "not_ready"


# --- identity -----------------------------------------------------------------------------


class NotFound(LedgerError):
    code = "not_found"

    def __init__(self, kind: str, ident: Any) -> None:
        super().__init__(f"{kind} {ident} does not exist", kind=kind, id=str(ident))


class LotNotFound(NotFound):
    def __init__(self, ident: Any) -> None:
        super().__init__("lot", ident)


class KitNotFound(NotFound):
    def __init__(self, ident: Any) -> None:
        super().__init__("kit", ident)


class LocationNotFound(NotFound):
    def __init__(self, ident: Any) -> None:
        super().__init__("location", ident)


class TrialNotFound(NotFound):
    def __init__(self, ident: Any) -> None:
        super().__init__("trial", ident)


class ShipmentNotFound(NotFound):
    def __init__(self, ident: Any) -> None:
        super().__init__("shipment", ident)


class BatchNotFound(NotFound):
    def __init__(self, ident: Any) -> None:
        super().__init__("batch", ident)


class PackagingRunNotFound(NotFound):
    def __init__(self, ident: Any) -> None:
        super().__init__("packaging run", ident)


class AlreadyExists(LedgerError):
    code = "already_exists"

    def __init__(self, kind: str, ident: Any) -> None:
        super().__init__(f"{kind} {ident} already exists", kind=kind, id=str(ident))


# --- input --------------------------------------------------------------------------------


class InvalidInput(LedgerError):
    """A value that no rule could accept: a negative quantity, an unknown unit, a bad check digit."""

    code = "invalid_input"

    def __init__(self, message: str, field: str | None = None, **details: Any) -> None:
        super().__init__(message, field=field, **details)


class LateEntryNeedsReason(InvalidInput):
    """A step recorded longer after it happened than the late-entry window allows, without a reason."""

    code = "late_entry_reason_required"

    def __init__(self, occurred_at: str, window_hours: float) -> None:
        super().__init__(
            f"occurred_at {occurred_at} is more than {window_hours:g} h ago: a late entry needs a reason "
            "(late_reason), recorded and flagged with it",
            field="late_reason",
            occurred_at=occurred_at,
            window_hours=window_hours,
        )


class UnitMismatch(InvalidInput):
    code = "unit_mismatch"


class InvalidIdentifier(InvalidInput):
    code = "invalid_identifier"


# --- authority ----------------------------------------------------------------------------


class NotAuthorised(LedgerError):
    """The actor's role may not perform this step (21 CFR 11.10(g) authority checks)."""

    code = "not_authorised"

    def __init__(self, action: str, role: str, allowed: list[str]) -> None:
        super().__init__(
            f"role {role!r} may not {action}; allowed: {', '.join(allowed)}",
            action=action,
            role=role,
            allowed=allowed,
        )


class SignatureRequired(LedgerError):
    code = "signature_required"

    def __init__(self, action: str, meaning: str) -> None:
        super().__init__(
            f"{action} needs an electronic signature with meaning {meaning!r}",
            action=action,
            meaning=meaning,
        )


# --- material ------------------------------------------------------------------------------


class InsufficientQuantity(LedgerError):
    code = "insufficient_quantity"

    def __init__(self, lot_id: Any, lot_number: str, asked: Any, remaining: Any) -> None:
        super().__init__(
            f"lot {lot_number} has {remaining} remaining, cannot consume {asked}",
            lot_id=str(lot_id),
            lot_number=lot_number,
            asked=str(asked),
            remaining=str(remaining),
        )


class LotNotUsable(LedgerError):
    """A lot that is not released (quarantined, rejected, on hold, recalled) or is expired."""

    code = "lot_not_usable"

    def __init__(self, lot_id: Any, lot_number: str, reason: str) -> None:
        super().__init__(
            f"lot {lot_number} cannot be used: {reason}",
            lot_id=str(lot_id),
            lot_number=lot_number,
            reason=reason,
        )


class LotNotHere(LotNotUsable):
    """A lot used, sent or received at a place it is not held at (or not sent to)."""

    code = "lot_not_here"

    def __init__(self, lot_id: Any, lot_number: str, reason: str) -> None:
        LedgerError.__init__(
            self,
            f"lot {lot_number} is not at this place: {reason}",
            lot_id=str(lot_id),
            lot_number=lot_number,
            reason=reason,
        )


class InvalidTransition(LedgerError):
    """A status change the life cycle does not allow (e.g. releasing a rejected lot)."""

    code = "invalid_transition"

    def __init__(self, kind: str, ident: Any, status: str, action: str) -> None:
        super().__init__(
            f"{kind} {ident} is {status}; cannot {action}",
            kind=kind,
            id=str(ident),
            status=status,
            action=action,
        )


class ReleaseIncomplete(LedgerError):
    """Kits ship only after QA disposition, QP certification and sponsor release for the country."""

    code = "release_incomplete"

    def __init__(self, run_id: Any, batch_number: str, missing: str) -> None:
        super().__init__(
            f"packaging batch {batch_number} is not released for shipment: {missing}",
            packaging_run_id=str(run_id),
            batch_number=batch_number,
            missing=missing,
        )


# --- kits and custody ------------------------------------------------------------------------


class KitNotUsable(LedgerError):
    """A kit that cannot be shipped or dispensed: wrong status, place, or too close to expiry."""

    code = "kit_not_usable"

    def __init__(self, kit_number: str, reason: str, **details: Any) -> None:
        super().__init__(f"kit {kit_number}: {reason}", kit_number=kit_number, reason=reason, **details)


class KitsNotUsable(LedgerError):
    """Several kits refused at once: the whole step is refused and every kit is named."""

    code = "kits_not_usable"

    def __init__(self, action: str, problems: list[dict[str, str]]) -> None:
        names = ", ".join(p["kit_number"] for p in problems[:10])
        more = f" and {len(problems) - 10} more" if len(problems) > 10 else ""
        why = f" ({problems[0]['reason']})" if len(problems) == 1 and problems[0].get("reason") else ""
        super().__init__(
            f"cannot {action} {len(problems)} kit(s): {names}{more}{why}",
            action=action,
            problems=problems,
        )


class SiteNotActive(LedgerError):
    code = "site_not_active"

    def __init__(self, location_id: Any, name: str, status: str) -> None:
        super().__init__(
            f"site {name} is {status}; it must be activated to receive kits",
            location_id=str(location_id),
            status=status,
        )


class ShipmentNotOpen(LedgerError):
    code = "shipment_not_open"

    def __init__(self, shipment_id: Any, shipment_number: str, status: str) -> None:
        super().__init__(
            f"shipment {shipment_number} is {status}; only a shipment in transit can be received",
            shipment_id=str(shipment_id),
            shipment_number=shipment_number,
            status=status,
        )


class ReceiptMismatch(LedgerError):
    """A receipt that names unknown kits, kits of another shipment, or leaves some unaccounted."""

    code = "receipt_mismatch"

    def __init__(self, shipment_number: str, problems: list[dict[str, str]]) -> None:
        super().__init__(
            f"receipt of shipment {shipment_number} refused: "
            + "; ".join(f"{p['kit_number']}: {p['reason']}" for p in problems[:10]),
            shipment_number=shipment_number,
            problems=problems,
        )


class WrongSite(LedgerError):
    """A site acting on a shipment or kit that is addressed to, or held by, another site."""

    code = "wrong_site"

    def __init__(self, shipment_number: str, site_id: Any) -> None:
        super().__init__(
            f"shipment {shipment_number} is not addressed to site {site_id}",
            shipment_number=shipment_number,
            site_id=str(site_id),
        )


class TimeOrderViolation(LedgerError):
    """Event time in the future, or before the step it follows."""

    code = "time_order"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, **details)


# --- store ---------------------------------------------------------------------------------


class ConcurrentWriteConflict(LedgerError):
    """Another writer changed one of the aggregates first; reload and retry."""

    code = "concurrent_write"

    def __init__(self) -> None:
        super().__init__("another write changed the same records first; retry the request")


# --- site-signed confirmations -------------------------------------------------------------------


class SiteSignatureRefused(LedgerError):
    """A site signature on a confirmation that does not verify, or by a key the site has not registered."""

    code = "site_signature_refused"

    def __init__(self, shipment_number: str, site_id: Any, key_id: str, reason: str) -> None:
        super().__init__(
            f"site signature on the receipt of shipment {shipment_number} refused: {reason}",
            shipment_number=shipment_number,
            site_id=str(site_id),
            key_id=key_id,
            reason=reason,
        )


# --- recall campaigns ----------------------------------------------------------------------------


class RecallNotFound(NotFound):
    def __init__(self, ident: Any) -> None:
        super().__init__("recall", ident)


class KitNotInRecall(LedgerError):
    """A kit named in a recall step that is not in the recall's recorded affected set."""

    code = "kit_not_in_recall"

    def __init__(self, recall_number: str, kit_id: Any) -> None:
        super().__init__(
            f"kit {kit_id} is not among the kits affected by recall {recall_number}",
            recall_number=recall_number,
            kit_id=str(kit_id),
        )


class RecallWrongPlace(LedgerError):
    """A site or depot acting on a recall, or a kit of it, that the recall did not record there."""

    code = "recall_wrong_place"

    def __init__(self, recall_number: str, place_id: Any, reason: str) -> None:
        super().__init__(
            f"recall {recall_number}: place {place_id}: {reason}",
            recall_number=recall_number,
            place_id=str(place_id),
            reason=reason,
        )


class RunRecalled(LedgerError):
    """A step on a kit of a packaging run that a recall named suspect."""

    code = "run_recalled"

    def __init__(self, run_id: Any, batch_number: str, recall_number: str) -> None:
        super().__init__(
            f"packaging batch {batch_number} is recalled under {recall_number}",
            run_id=str(run_id),
            batch_number=batch_number,
            recall_number=recall_number,
        )


class KitUnderRecall(LedgerError):
    """A step outside a recall on a kit that an open recall holds: the recall records it instead."""

    code = "kit_under_recall"

    def __init__(self, kit_number: str, recall_number: str, recall_id: Any, step: str, route: str) -> None:
        super().__init__(
            f"kit {kit_number} is in open recall {recall_number}: {step} through the recall, which "
            f"records it ({route})",
            kit_number=kit_number,
            recall_number=recall_number,
            recall_id=str(recall_id),
        )


class SiteNotReconciled(LedgerError):
    """A site closed out while kits delivered to it are still on their way, on hand or unresolved."""

    code = "site_not_reconciled"

    def __init__(self, site: str, open_kits: dict[str, list[str]]) -> None:
        count = sum(len(v) for v in open_kits.values())
        said = "; ".join(f"{outcome.replace('_', ' ')}: {', '.join(n[:10])}" + (" ..." if len(n) > 10 else "")
                         for outcome, n in open_kits.items())
        super().__init__(
            f"site {site} cannot close out: {count} kit(s) not yet accounted for ({said})",
            site=site,
            outstanding=count,
            kits={k: v[:100] for k, v in open_kits.items()},
        )


class ReadSideRequired(LedgerError):
    """A step that reads what the read models know (a site's kits) run where there is no read side."""

    code = "read_side_required"

    def __init__(self, action: str) -> None:
        super().__init__(f"to {action} the ledger reads the read models: run it through the API")


class RecallOutstanding(LedgerError):
    """A recall closed while some affected kits are neither accounted for nor justified."""

    code = "recall_outstanding"

    def __init__(
        self, recall_number: str, kit_numbers: list[str], places: dict[str, int] | None = None
    ) -> None:
        more = f" and {len(kit_numbers) - 10} more" if len(kit_numbers) > 10 else ""
        shown = ", ".join(kit_numbers[:10]) + more
        where = "; ".join(f"{n} at {place}" for place, n in (places or {}).items())
        super().__init__(
            f"recall {recall_number} cannot close: {len(kit_numbers)} kit(s) not accounted for: {shown}"
            + (f" ({where})" if where else ""),
            recall_number=recall_number,
            outstanding=len(kit_numbers),
            kit_numbers=kit_numbers[:100],
            places=places or {},
        )


# --- visibility ----------------------------------------------------------------------------------


class NotBoundHere(LedgerError):
    """A person of a place-bound role acted at a place they are not bound to. Says nothing of what is
    at that place."""

    code = "not_bound_here"

    def __init__(self, principal: str, action: str, place_id: Any) -> None:
        super().__init__(
            f"{principal} is not bound to this place and may not {action} there",
            principal=principal,
            place_id=str(place_id),
        )


class NotYourSite(LedgerError):
    """A site user asked about something that never passed through any of their sites."""

    code = "forbidden"

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} never passed through your sites", reason="not_your_site")


class StoreBusy(LedgerError):
    """The store stayed busy (locked by other writers, or not answering) through every retry."""

    code = "store_busy"

    def __init__(self, detail: str) -> None:
        super().__init__("the store is busy; retry the request shortly", detail=detail)
