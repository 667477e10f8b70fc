"""What every aggregate shares: deterministic ids from business keys, the audit stamp, role checks."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from ledger.errors import InvalidInput, LateEntryNeedsReason, NotAuthorised, NotBoundHere, TimeOrderViolation
from ledger.values import PLACE_BOUND, Actor, Role, iso, now, utc

LOTLINE_NS = uuid5(NAMESPACE_URL, "https://lotline.dev/ids")

# Clocks at sites drift; an event may claim a time at most this far past the server's clock.
CLOCK_SKEW = timedelta(minutes=5)

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
"""No step of an electronic GMP record this ledger keeps happened before this (a typo'd year, 1792
for 2025, would otherwise enter the permanent chain)."""


@dataclass(frozen=True, slots=True)
class LateEntries:
    """How a step recorded long after it happened is treated: beyond `window` (None: never) it is a late
    entry, which needs a `reason`; a given reason is recorded whether or not the step is late."""

    window: timedelta | None = None
    reason: str | None = None


_LATE: ContextVar[LateEntries | None] = ContextVar("lotline_late_entries", default=None)


@contextmanager
def late_entries(policy: LateEntries) -> Iterator[None]:
    """Stamp every step inside the block under `policy` (set by `Ledger.handle` for each command)."""
    token = _LATE.set(policy)
    try:
        yield
    finally:
        _LATE.reset(token)


_CAPTURED: ContextVar[tuple[dict[str, str], ...] | None] = ContextVar("lotline_captured_from", default=None)


@contextmanager
def captured_from(origin: tuple[dict[str, str], ...]) -> Iterator[None]:
    """Stamp every step inside the block as recorded from a partner's EPCIS events: `origin` holds, for
    each event, its `eventID` and what else of it the EPCIS adapter keeps (docs/epcis.md, "Event IDs");
    text only. It is kept in the audit as `captured_from`, inside the hashed bytes of the event."""
    token = _CAPTURED.set(origin or None)
    try:
        yield
    finally:
        _CAPTURED.reset(token)


_NS_BYTES = LOTLINE_NS.bytes


def stable_id(kind: str, *key: str) -> UUID:
    """The aggregate id for a business key: the same key always names the same aggregate.

    It is `uuid5(LOTLINE_NS, "kind:key...")`, written out with the namespace's bytes made once:
    `uuid5` makes them on every call, a third of its cost (a package of 100 kits makes 100 ids)."""
    digest = hashlib.sha1(_NS_BYTES + ":".join((kind, *key)).encode("utf-8")).digest()
    return UUID(bytes=digest[:16], version=5)


CANONICAL_VERSION = 2
"""The canonical document version of the events this code records (docs/canonical-encoding.md): 2 hashes
the late-entry flag and reason too; events recorded without the mark are version 1 and keep their bytes."""


def stamp(actor: Actor, occurred_at: datetime | None = None, reason: str | None = None) -> dict[str, Any]:
    """Who, when and why of one event (21 CFR 11.10(e)): stored with the event and hashed with it. A step
    that happened longer ago than the late-entry window (`late_entries`) is flagged `late_entry`, with
    its `late_reason`; without a reason it is refused. `canonical` names the version of the event's
    canonical document, which decides which of these the hash covers."""
    when = utc(occurred_at, "occurred_at") if occurred_at else now()
    if when > now() + CLOCK_SKEW:
        raise TimeOrderViolation(f"occurred_at {iso(when)} is in the future", occurred_at=iso(when))
    if when < EARLIEST:
        raise InvalidInput(
            f"occurred_at {iso(when)} is before {EARLIEST.date()}: not a plausible time for this record",
            field="occurred_at",
        )
    audit: dict[str, Any] = {**actor.as_dict(), "occurred_at": iso(when), "canonical": CANONICAL_VERSION}
    if reason:
        audit["reason"] = reason
    late = _LATE.get() or LateEntries()
    if late.window is not None and occurred_at is not None and when < now() - late.window:
        if not late.reason:
            raise LateEntryNeedsReason(iso(when), late.window / timedelta(hours=1))
        audit["late_entry"] = True
    if late.reason:
        audit["late_reason"] = late.reason
    origin = _CAPTURED.get()
    if origin:
        audit["captured_from"] = [dict(o) for o in origin]
    return audit


def require_role(actor: Actor, action: str, *allowed: Role, at: UUID | None = None) -> None:
    """Authority check (21 CFR 11.10(g)): only the named roles (and never a read-only one) may take this
    step; a step `at` a place only by someone bound to it, when the actor is a person of a place-bound
    role. Checked before anything is read, so a refusal says nothing of what is at that place."""
    if actor.role not in allowed:
        raise NotAuthorised(action, str(actor.role), [str(r) for r in allowed])
    if at is not None and actor.places is not None and actor.role in PLACE_BOUND and at not in actor.places:
        raise NotBoundHere(actor.principal, action, at)


class LedgerAggregate(Aggregate):
    """Base aggregate: remembers when its last step happened so that steps stay in causal order."""

    @property
    def last_occurred_at(self) -> str:
        """When the latest step on this aggregate happened (ISO 8601, UTC, microseconds)."""
        return str(getattr(self, "_last_occurred_at", ""))

    def _require_after_last_step(self, audit: dict[str, Any], what: str) -> None:
        if self.last_occurred_at and audit["occurred_at"] < self.last_occurred_at:
            raise TimeOrderViolation(
                f"{what} at {audit['occurred_at']} is before the previous step at {self.last_occurred_at}",
                occurred_at=audit["occurred_at"],
                previous=self.last_occurred_at,
            )

    def _touch(self, audit: dict[str, Any]) -> None:
        self._last_occurred_at = max(self.last_occurred_at, audit["occurred_at"])
