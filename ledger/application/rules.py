"""Small checks every context's handlers share: own signatures, reasons, countries, kit lists."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any
from uuid import UUID

from ledger.countries import ISO_3166_ALPHA2
from ledger.domain import Kit
from ledger.errors import InvalidInput, KitsNotUsable, LedgerError
from ledger.values import Actor, Signature


def require_own(actor: Actor, sig: Signature) -> None:
    """A signature belongs to the person doing the step (21 CFR 11.70: linked to its record)."""
    if sig.signer != actor.principal:
        raise InvalidInput("the signature must be the acting user's own", field="signature")


def reason(text: str | None) -> str:
    """The step's reason, stripped; refused when empty."""
    if not text or not text.strip():
        raise InvalidInput("this step needs a reason", field="reason")
    return text.strip()


def country(code: str, field: str = "country") -> str:
    """An officially assigned ISO 3166-1 alpha-2 country code (upper case)."""
    if code not in ISO_3166_ALPHA2:
        raise InvalidInput(f"{code!r} is not an ISO 3166-1 alpha-2 country code", field=field)
    return code


def day(audit: dict[str, Any]) -> date:
    """The calendar day (UTC) a stamped step happened."""
    return datetime.fromisoformat(audit["occurred_at"]).date()


def unique(ids: Sequence[UUID]) -> list[UUID]:
    """The kit ids of a step: at least one, each once."""
    if not ids:
        raise InvalidInput("name at least one kit", field="kit_ids")
    if len(set(ids)) != len(ids):
        raise InvalidInput("each kit is listed once", field="kit_ids")
    return list(ids)


def problem(kit_id: UUID, kit_number: str, e: LedgerError) -> dict[str, str]:
    """One refused kit of a multi-kit step: which kit, which rule (code) and why."""
    return {"kit_id": str(kit_id), "kit_number": kit_number, "code": e.code, "reason": e.message}


def each(kits: Sequence[Kit], action: str, step: Callable[[Kit], Any]) -> None:
    """Apply `step` to every kit; refuse the whole step naming every kit that was refused."""
    problems = []
    for kit in kits:
        try:
            step(kit)
        except LedgerError as e:
            problems.append(problem(kit.id, kit.kit_number, e))
    if problems:
        raise KitsNotUsable(action, problems)
