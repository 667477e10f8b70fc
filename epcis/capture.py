"""Capture: a partner's EPCISDocument becomes ledger commands, all or nothing, each event once.

1. The document is validated by Lotline's EPCIS models (`epcis.models`).
2. Each event's GS1 hash ID is computed; events captured before (table `epcis_captured`) are skipped.
3. The events are planned into ledger commands (`ledger.commands`; a shipping ObjectEvent with the
   packing AggregationEvent of its SSCC is one `Ship`; the receiving events of one shipment at one
   time are one `ConfirmReceipt`; an error declaration with its corrective event is one
   `CorrectLotQuantity`). Kits' steps under a recall (events with `lotline:recall`) are refused: they
   belong to a recall campaign.
4. If validation and planning found no problem, every command is handled inside one
   `Ledger.atomically()` block: the ledger's own rules, on the state left by the document's earlier
   events, nothing written yet. The first event the ledger refuses ends the dry run (later events
   may fail only because of it). Any problem refuses the whole document, with the index and reason
   of each event found wrong, and the block saves nothing.
5. Otherwise the block saves every event in one transaction, and in that same transaction the captured
   hash IDs (`epcis_captured`) and the eventIDs of the sender's own naming (`epcis_sender_event_id`,
   unique): a resend after a crash finds them, and of two captures racing with one eventID, one is
   written and the other, refused by the stored row, runs again and finds the ID taken. (Two captures
   of the same events mostly collide earlier, on the events' own keys and versions: a concurrent
   write, 409; nothing is recorded twice.)
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import partial
from itertools import pairwise
from typing import Any
from uuid import UUID

from pydantic import ValidationError
from sqlalchemy import BigInteger, Column, Engine, MetaData, String, Table, select

from epcis import ids
from epcis import mapping as m
from epcis.conformance import CONTEXT_PREFIXES, STANDARD_FIELDS, breaches, pointer_token
from epcis.eventhash import document_hash_ids
from epcis.models import (
    AggregationEvent,
    EPCISDocument,
    ObjectEvent,
    QuantityElement,
    TransformationEvent,
    cbv_word,
    validation_problems,
)
from ledger.application import Ledger
from ledger.commands import (
    ActivateSite,
    Arm,
    AuthoriseDestruction,
    CertifyPackaging,
    Command,
    ConfirmReceipt,
    CorrectLotQuantity,
    DecideQuarantine,
    DestroyKits,
    Dispense,
    DisposePackaging,
    ExtendExpiry,
    Formulate,
    HoldLot,
    OutputLot,
    Package,
    RecallLot,
    ReceiveLot,
    ReceiveLotTransfer,
    ReceiveReturnedKits,
    RecordDeviation,
    Recorded,
    RegisterLocation,
    RegisterTrial,
    RejectLot,
    ReleaseLot,
    ReportExcursion,
    ReturnKit,
    ReturnToDepot,
    Ship,
    SponsorRelease,
    TransferLot,
)
from ledger.domain import Kit, Location, Lot, ManufacturingBatch, PackagingRun, Shipment, Trial
from ledger.errors import ConcurrentWriteConflict, InvalidInput, LedgerError, NotAuthorised, NotFound
from ledger.recorders import Link, Row, RowExists
from ledger.values import Actor, Meaning, Quantity, Role, sign
from projections.epcis_index import event_table as index_event

metadata = MetaData()
captured = Table(
    "epcis_captured",
    metadata,
    Column("event_hash", String(200), primary_key=True),
    Column("seq", BigInteger),
    Column("principal", String(100), nullable=False),
    Column("captured_at", String(40), nullable=False),
)
EVENT_ID_LIMIT = 200
"""Characters of an eventID Lotline keeps (the EPCIS index's column)."""
sender_ids = Table(
    "epcis_sender_event_id",
    metadata,
    Column("event_id", String(EVENT_ID_LIMIT), primary_key=True),
    Column("event_hash", String(200), nullable=False),
)
"""The eventIDs senders named their events with (not hash IDs), one event each (revision 0010)."""


class MappingError(InvalidInput):
    """An event Lotline cannot turn into a ledger command."""

    code = "epcis_unmapped"


RECALL_STEP_REFUSED = (
    "a kit's step under a recall (lotline:recall) is not captured: recall quarantines and returns are "
    "recorded through the recall campaign (the API's /recalls routes); EPCIS capture does not carry "
    "recall campaigns"
)
"""Why an event of kits quarantined, sent back to their depot or received there under a recall is
refused."""


@dataclass(frozen=True, slots=True)
class EventError:
    """Why one event (by its index in the document's eventList; None for the document) was refused."""

    index: int | None
    code: str
    reason: str
    event_id: str | None = None
    pointer: str | None = None
    """The JSON pointer (RFC 6901) of what was refused in the document, when one value is to blame."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index, "eventID": self.event_id, "code": self.code, "reason": self.reason,
            "pointer": self.pointer,
        }


def _nonconforming(raw: Any) -> list[EventError]:
    """What the standard forbids in the document (`epcis.conformance`), as refusals."""
    return [EventError(b.index, "epcis_nonconforming", b.rule, pointer=b.pointer) for b in breaches(raw)]


def _invalid(error: ValidationError) -> list[EventError]:
    return [
        EventError(
            p["index"], "invalid_epcis", f"{p['path']}: {p['reason']}".lstrip(": "), pointer=p["pointer"]
        )
        for p in validation_problems(error)
    ]


@dataclass(frozen=True, slots=True)
class CaptureResult:
    """The outcome of one capture: accepted (all recorded) or refused (nothing recorded)."""

    accepted: bool
    events: int
    recorded: int = 0
    duplicates: int = 0
    ledger_events: int = 0
    errors: tuple[EventError, ...] = ()
    event_ids: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "events": self.events,
            "recorded": self.recorded,
            "duplicates": self.duplicates,
            "ledgerEvents": self.ledger_events,
            "errors": [e.as_dict() for e in self.errors],
            "eventIDs": list(self.event_ids),
        }


@dataclass(slots=True)
class Step:
    """One ledger command planned from one or more events of the document.

    `command` is built by planning from the events alone; where it depends on the ledger's state
    (which shipment a receipt confirms; whether a QA decision names a lot or a packaged batch), it
    is a function building it from the state the document's earlier steps left. A step with a
    `signed` meaning is signed at capture by the identity doing it, the one thing a partner's
    document cannot carry.
    """

    indices: list[int]
    action: str
    roles: tuple[Role, ...]
    command: Command | Callable[[Ledger], Command]
    preferred: Any = None
    signed: Meaning | None = None
    keys: list[str] = field(default_factory=list)

    def run(
        self,
        ledger: Ledger,
        actors: Actors,
        origin: Sequence[Mapping[str, str]] = (),
        claims: Sequence[Any] = (),
    ) -> Recorded:
        """Handle the command as one of the capturing identities allowed to do it, stamped with what
        is kept of the step's events (`origin`, see `kept`). `claims`: the `lotline:actor` of each of
        its events that this step does (not an error declaration, whose doer is the original's)."""
        actor = actors.pick(self.action, self.roles, self.preferred)
        for claimed in claims:  # given back as sent, an event must not name another doer than the ledger's
            if claimed is not None and claimed != actor.as_dict():
                raise NotTheActor(claimed, actor)
        command = self.command if isinstance(self.command, Command) else self.command(ledger)
        if self.signed is not None:
            command = command.model_copy(update={"signature": sign(actor, self.signed)})
        with ledger.captured(origin):
            return ledger.handle(command, actor)


class NotTheActor(LedgerError):
    """An event's `lotline:actor` names someone other than the identity that does its step here: kept
    and given back, it would claim a doer the ledger did not record."""

    code = "epcis_not_kept"

    def __init__(self, claimed: Any, actor: Actor) -> None:
        who = claimed.get("principal") if isinstance(claimed, Mapping) else claimed
        super().__init__(
            f"lotline:actor names {who!r}, but the step is done by {actor.principal} ({actor.role}), "
            "who captures it: an event is given back only with the doer the ledger recorded",
            field="lotline:actor",
        )


class _Refused(Exception):
    """Leaves the capture's `atomically()` block, so that nothing it staged is saved."""


class Actors:
    """The identities a capture may act as; each step is done by one allowed for it."""

    def __init__(self, actors: Actor | Sequence[Actor]) -> None:
        self.actors = [actors] if isinstance(actors, Actor) else list(actors)
        if not self.actors:
            raise InvalidInput("capture needs the acting user", field="actor")

    def pick(self, action: str, roles: Iterable[Role], preferred: Any = None) -> Actor:
        """The preferred principal if allowed, else the first actor of the preferred role, else the
        first actor whose role may do `action`."""
        allowed = list(roles)
        wanted = preferred.get("principal") if isinstance(preferred, Mapping) else None
        role = preferred.get("role") if isinstance(preferred, Mapping) else None
        fitting = [a for a in self.actors if a.role in allowed]
        for a in fitting:
            if a.principal == wanted:
                return a
        for a in fitting:
            if a.role == role:
                return a
        if fitting:
            return fitting[0]
        raise NotAuthorised(action, ", ".join(str(a.role) for a in self.actors), [str(r) for r in allowed])


_QUERY_EVENTS = "/epcisBody/queryResults/resultsBody/eventList"


def _as_document(raw: Any) -> tuple[Any, str | None]:
    """An `EPCISQueryDocument` (a partner's query answer) as the `EPCISDocument` of its events, and
    where its events were (to name them in refusals); anything else as it is."""
    if not isinstance(raw, Mapping) or raw.get("type") != "EPCISQueryDocument":
        return raw, None
    body = raw.get("epcisBody")
    results = body.get("queryResults") if isinstance(body, Mapping) else None
    found = results.get("resultsBody") if isinstance(results, Mapping) else None
    events = found.get("eventList") if isinstance(found, Mapping) else None
    kept = {k: v for k, v in raw.items() if k not in ("type", "epcisBody")}
    return {**kept, "type": "EPCISDocument", "epcisBody": {"eventList": events}}, _QUERY_EVENTS


def _pointed_back(errors: list[EventError], events_at: str | None) -> list[EventError]:
    """Refusals of a query document's events, with pointers into the document as it was sent."""
    if events_at is None:
        return errors
    inside = "/epcisBody/eventList"
    return [
        replace(e, pointer=events_at + e.pointer[len(inside) :])
        if e.pointer is not None and e.pointer.startswith(inside)
        else e
        for e in errors
    ]


def parsed(document: str | bytes | Mapping[str, Any]) -> tuple[Any, str | None]:
    """The document as JSON (an `EPCISQueryDocument` as the `EPCISDocument` of its events) and where
    its events were sent; ValueError when it is not JSON."""
    try:
        raw = json.loads(document) if isinstance(document, str | bytes) else dict(document)
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON: {e}") from None
    return _as_document(raw)


class CaptureTooLarge(LedgerError):
    """A document with more events than one capture takes (`GS1-EPCIS-Capture-Limit`)."""

    code = "capture_too_large"

    def __init__(self, events: int, limit: int) -> None:
        super().__init__(
            f"the document holds {events} events; one capture takes at most {limit}: send it as several "
            "documents, in order",
            events=events,
            limit=limit,
        )


def capture(
    ledger: Ledger,
    engine: Engine,
    document: str | bytes | Mapping[str, Any],
    actor: Actor | Sequence[Actor],
    limit: int | None = None,
) -> CaptureResult:
    """Validate, plan and dry-run a whole EPCISDocument (or EPCISQueryDocument); record all of it
    atomically or none of it. More than `limit` events: CaptureTooLarge, nothing looked at."""
    actors = Actors(actor)
    try:
        raw, events_at = parsed(document)
    except ValueError as e:
        return _refused(0, [EventError(None, "invalid_json", str(e))])
    if limit is not None and _event_count(raw) > limit:
        raise CaptureTooLarge(_event_count(raw), limit)
    try:
        result = _capture(ledger, engine, raw, actors)
    except RowExists:
        # Another capture wrote some of these events, or one of these eventIDs, while this one ran (its
        # rows refused this write whole): looked at again, they are a resend or an eventID taken.
        try:
            result = _capture(ledger, engine, raw, actors)
        except RowExists:
            raise ConcurrentWriteConflict() from None
    return replace(result, errors=tuple(_pointed_back(list(result.errors), events_at)))


def _capture(ledger: Ledger, engine: Engine, raw: Any, actors: Actors) -> CaptureResult:
    count = _event_count(raw)
    try:
        doc = EPCISDocument.model_validate(raw)
    except ValidationError as e:
        return _refused(count, _invalid(e))
    nonconforming = _nonconforming(raw)
    if nonconforming:
        return _refused(count, nonconforming)
    hashes = document_hash_ids(raw)
    raw_events = raw["epcisBody"]["eventList"]
    unkeepable = _false_hash_ids(raw_events, hashes) + _not_kept(raw_events, hashes)
    if unkeepable:
        return _refused(count, sorted(unkeepable, key=lambda e: e.index or 0), hashes)
    context = raw.get("@context")
    origins = [kept(e, e.get("eventID") or h, context) for e, h in zip(raw_events, hashes, strict=True)]
    too_large = [
        EventError(
            i, "epcis_not_kept",
            f"Lotline keeps at most {KEPT_LIMIT:,} characters of an event's extensions, ilmd and fields kept "
            f"as sent (this one has {len(o['fields']):,}): send a summary, the rest by reference",
            hashes[i], f"/epcisBody/eventList/{i}",
        )
        for i, o in enumerate(origins)
        if len(o.get("fields", "")) > KEPT_LIMIT
    ]
    if too_large:
        return _refused(count, too_large, hashes)
    keys = [_key(h, e) for h, e in zip(hashes, doc.epcisBody.eventList, strict=True)]
    done = _captured(engine, keys)
    taken = _long_ids(raw_events, keys, done, hashes) + _taken_ids(engine, raw_events, keys, done, hashes)
    if taken:
        return _refused(count, taken, hashes)
    planner = Planner(doc, hashes)
    planned, errors = planner.plan()
    fresh, duplicates = _drop_duplicates(planned, keys, done, errors)
    starts: list[int] = []
    principal = actors.actors[0].principal

    def remembered(links: Sequence[Link]) -> list[Row]:
        """The rows written with the events: each step's keys, at the chain position of its first event
        (the block's events are written in order, a link each), and the sender's own eventIDs."""
        bounds = pairwise([*starts, len(links)])
        seqs = [links[start].seq if start < end else None for start, end in bounds]
        return _remembered(fresh, seqs, principal, raw_events, hashes)

    # An event's time is its business time; a partner's system recorded it first, so one older than the
    # late-entry window is a late entry here, and says why.
    late = "captured from an EPCIS document: recorded first by the system that sent it"
    try:
        with ledger.late_entries_because(late), ledger.atomically(alongside=remembered) as staged:
            errors += planner.master_data(ledger, actors)
            for step in fresh if not errors else ():
                starts.append(len(staged.events))
                try:
                    claims = [
                        raw_events[i].get("lotline:actor")
                        for i in step.indices
                        if "errorDeclaration" not in raw_events[i]
                    ]
                    step.run(ledger, actors, [origins[i] for i in step.indices], claims)
                except LedgerError as e:
                    # The first refusal ends the dry run: later events may only fail because this one did.
                    errors += [EventError(i, e.code, e.message, hashes[i]) for i in step.indices]
                    break
            if errors:
                raise _Refused
    except _Refused:
        return _refused(count, sorted(errors, key=lambda x: (x.index is None, x.index or 0)), hashes)
    recorded = sum(len(step.indices) for step in fresh)
    return CaptureResult(True, count, recorded, duplicates, len(staged.events), (), tuple(hashes))


_HASH_ID = re.compile(r"^ni:///sha-256;([0-9a-fA-F]{64})\?ver=CBV2\.0$")


def _false_hash_ids(events: Sequence[Mapping[str, Any]], hashes: Sequence[str]) -> list[EventError]:
    """An `ni:///` eventID of CBV 2.0's event hash claims to be the event's hash: refused when it is not
    (it would be kept, and re-exported, as the ID of an event it does not hash)."""
    return [
        EventError(
            i,
            "epcis_nonconforming",
            f"the eventID is an event hash ID (ni:///sha-256;...?ver=CBV2.0) but not this event's: its hash "
            f"is {h}",
            e["eventID"],
            f"/epcisBody/eventList/{i}/eventID",
        )
        for i, (e, h) in enumerate(zip(events, hashes, strict=True))
        if (claim := _HASH_ID.match(str(e.get("eventID", "")))) and f";{claim[1].lower()}?" not in h
    ]


KEPT_LIMIT = 8192
"""The most characters of an event kept as sent (`kept`'s `fields`): they are stored, and hashed, with
each ledger event of its step (a receipt of 500 kits holds them 500 times)."""

_KEPT_IN = {
    "readPoint": frozenset({"id"}),
    "bizLocation": frozenset({"id"}),
    "errorDeclaration": frozenset({"declarationTime", "reason", "correctiveEventIDs", "lotline:reason"}),
}
"""The members of these standard fields that Lotline keeps (the place's ID; what a corrected quantity
records): an extension member inside them would be dropped, so it is refused."""


def _not_kept(events: Sequence[Mapping[str, Any]], hashes: Sequence[str]) -> list[EventError]:
    """Members Lotline could not give back (`_KEPT_IN`), and a declared error other than incorrect
    data (the one Lotline records: a lot receipt's corrected quantity)."""
    found = []
    for i, event in enumerate(events):
        for standard, members in _KEPT_IN.items():
            value = event.get(standard)
            for name in sorted(set(value) - members) if isinstance(value, Mapping) else ():
                found.append(
                    EventError(
                        i,
                        "epcis_not_kept",
                        f"Lotline keeps only {', '.join(sorted(members))} of {standard}; {name!r} would be "
                        "dropped (an extension at the event's top level is kept as sent)",
                        hashes[i],
                        f"/epcisBody/eventList/{i}/{standard}/{pointer_token(name)}",
                    )
                )
        when = event.get("eventTime")
        if isinstance(when, str) and _as_lotline_writes(when) is None:
            found.append(EventError(
                i, "epcis_not_kept",
                f"eventTime {when!r}: Lotline gives an event back with its time as sent, and cannot read "
                "this form of it (write it without a leap second)",
                hashes[i], f"/epcisBody/eventList/{i}/eventTime",
            ))
        declaration = event.get("errorDeclaration")
        reason = declaration.get("reason") if isinstance(declaration, Mapping) else None
        if reason is not None and cbv_word(str(reason)) != "incorrect_data":
            found.append(
                EventError(
                    i,
                    "epcis_not_kept",
                    f"an error declared with reason {reason!r}: Lotline records declared errors as corrected "
                    "data (reason incorrect_data) and would give this one back as such",
                    hashes[i],
                    f"/epcisBody/eventList/{i}/errorDeclaration/reason",
                )
            )
    return found


def kept(event: Mapping[str, Any], event_id: str, context: Any) -> dict[str, str]:
    """What Lotline keeps of a captured event besides the ledger step it makes, so that an export gives
    the event back as it was sent: its eventID (given, or its hash), the key that finds it among its
    step's events (`mapping.match_key`), its eventTime and offset as written where Lotline would write
    them otherwise (UTC, `+00:00`), and its extension fields, `ilmd` and the fields kept as sent
    (`mapping.KEPT_AS_SENT`) verbatim (JSON text; names whose prefix only the partner's @context
    declares written as absolute URIs). The treatment allocation is not kept: it is the ledger's, and
    unblinded only."""
    found = {"eventID": event_id, "match": m.match_key(event)}
    offset = event.get("eventTimeZoneOffset")
    if isinstance(offset, str) and offset != "+00:00":
        found["eventTimeZoneOffset"] = offset
    when = event.get("eventTime")
    if isinstance(when, str) and when != _as_lotline_writes(when):
        found["eventTime"] = when
    prefixes = _prefix_map(context) | _prefix_map(event.get("@context"))
    fields = {
        _absolute(k, prefixes): _absolute_keys(v, prefixes)
        for k, v in event.items()
        if (k not in STANDARD_FIELDS or k in ("ilmd", *m.KEPT_AS_SENT)) and k not in m.UNBLINDED_ONLY
    }
    if any(k in event for k in m.UNBLINDED_ONLY):
        found["unblinded"] = "true"
    if fields:
        found["fields"] = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return found


def _as_lotline_writes(event_time: str) -> str | None:
    """An eventTime as Lotline writes it (UTC, microseconds, `Z`); None for a form Lotline cannot read
    (RFC 3339 allows a leap second, `...T23:59:60Z`): such an event is refused (`_not_kept`), since the
    index and every reader of the export must read the time it is given back with."""
    instant = m.instant(event_time)
    if instant is None:
        return None
    return instant.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _prefix_map(context: Any) -> dict[str, str]:
    """The prefixes a `@context` (a list, an object or a string) declares, with their IRIs."""
    items = context if isinstance(context, list) else [context]
    return {
        k: v for item in items if isinstance(item, Mapping) for k, v in item.items() if isinstance(v, str)
    }


def _absolute(name: str, prefixes: Mapping[str, str]) -> str:
    """A compact name as an absolute URI, unless every export declares its prefix (`lotline`, the
    EPCIS context's own) with the same meaning."""
    prefix, sep, rest = name.partition(":")
    if not sep or rest.startswith("//") or prefix not in prefixes:
        return name
    if prefix in CONTEXT_PREFIXES or (prefix == "lotline" and prefixes[prefix] == m.LOTLINE):
        return name
    return prefixes[prefix] + rest


def _absolute_keys(value: Any, prefixes: Mapping[str, str]) -> Any:
    if isinstance(value, Mapping):
        return {_absolute(k, prefixes): _absolute_keys(v, prefixes) for k, v in value.items()}
    if isinstance(value, list):
        return [_absolute_keys(v, prefixes) for v in value]
    return value


def _refused(count: int, errors: list[EventError], hashes: Sequence[str] = ()) -> CaptureResult:
    return CaptureResult(False, count, errors=tuple(errors), event_ids=tuple(hashes))


def _event_count(raw: Any) -> int:
    try:
        return len(raw["epcisBody"]["eventList"])
    except (KeyError, TypeError):
        return 0


def _key(event_hash: str, event: Any) -> str:
    """The idempotency key: the hash ID, and for an error declaration also its declaration time
    (the hash leaves `errorDeclaration` out, so the declaration shares the original's ID)."""
    if event.errorDeclaration is None:
        return event_hash
    return f"{event_hash}#declared={event.errorDeclaration.declarationTime.isoformat()}"


def _long_ids(
    events: Sequence[Mapping[str, Any]], keys: Sequence[str], done: set[str], hashes: Sequence[str]
) -> list[EventError]:
    """New events whose eventID is longer than Lotline keeps (a resend of one captured before this
    limit is still a resend)."""
    return [
        EventError(
            i, "epcis_not_kept",
            f"Lotline keeps eventIDs of at most {EVENT_ID_LIMIT} characters "
            f"(this one has {len(e['eventID']):,})",
            hashes[i], f"/epcisBody/eventList/{i}/eventID",
        )
        for i, e in enumerate(events)
        if isinstance(e.get("eventID"), str) and len(e["eventID"]) > EVENT_ID_LIMIT and keys[i] not in done
    ]


def _taken_ids(
    engine: Engine, events: Sequence[Mapping[str, Any]], keys: Sequence[str], done: set[str],
    hashes: Sequence[str],
) -> list[EventError]:
    """An eventID of the sender's own (not a hash ID, which names its event) that another event already
    has, in the document or in the store's EPCIS index: two events would answer to one ID. An error
    declaration shares its event's ID; an event captured before is a resend. Looked up in the eventIDs
    captures wrote with their events (`sender_ids`, current) and in the EPCIS index (for events captured
    before that table was kept)."""
    wanted: dict[str, int] = {}
    found: list[EventError] = []
    for i, event in enumerate(events):
        event_id = _sender_id(event)
        if event_id is None or keys[i] in done:
            continue
        if event_id in wanted:
            found.append(EventError(i, "epcis_duplicate_event_id",
                                    f"eventID {event_id} is also event {wanted[event_id]}'s in this document",
                                    hashes[i], f"/epcisBody/eventList/{i}/eventID"))
        wanted.setdefault(event_id, i)
    if wanted:
        with engine.connect() as conn:
            held = set(conn.execute(
                select(index_event.c.event_id).where(index_event.c.event_id.in_(list(wanted)))
            ).scalars())
            held.update(conn.execute(
                select(sender_ids.c.event_id).where(sender_ids.c.event_id.in_(list(wanted)))
            ).scalars())
        found += [
            EventError(i, "epcis_duplicate_event_id",
                       f"eventID {event_id} is another event's here already: an eventID names one event",
                       hashes[i], f"/epcisBody/eventList/{i}/eventID")
            for event_id, i in wanted.items() if event_id in held
        ]
    return sorted(found, key=lambda e: e.index or 0)


def _captured(engine: Engine, keys: Sequence[str]) -> set[str]:
    found: set[str] = set()
    unique = list(dict.fromkeys(keys))
    with engine.connect() as conn:
        for start in range(0, len(unique), 500):
            part = unique[start : start + 500]
            found.update(
                conn.execute(select(captured.c.event_hash).where(captured.c.event_hash.in_(part))).scalars()
            )
    return found


def _drop_duplicates(
    planned: list[Step], keys: Sequence[str], done: set[str], errors: list[EventError]
) -> tuple[list[Step], int]:
    """Steps whose events were all captured before are skipped; partly captured ones are refused."""
    fresh, duplicates, seen = [], 0, set(done)
    for step in planned:
        step.keys = [keys[i] for i in step.indices]
        known = [k in seen for k in step.keys]
        if all(known):
            duplicates += len(step.indices)
        elif any(known):
            errors += [
                EventError(
                    i, "epcis_partly_captured", "some events of this step were captured before, others not"
                )
                for i in step.indices
            ]
        else:
            fresh.append(step)
            seen.update(step.keys)
    return fresh, duplicates


def _remembered(
    steps: Sequence[Step], seqs: Sequence[int | None], principal: str, events: Sequence[Mapping[str, Any]],
    hashes: Sequence[str],
) -> list[Row]:
    now = datetime.now(UTC).isoformat()
    rows = [
        Row(captured.name, {"event_hash": k, "seq": seq, "principal": principal, "captured_at": now})
        for step, seq in zip(steps, seqs, strict=True)
        for k in dict.fromkeys(step.keys)
    ]
    for step in steps:
        for i in step.indices:
            if (event_id := _sender_id(events[i])) is not None:
                rows.append(Row(sender_ids.name, {"event_id": event_id, "event_hash": hashes[i]}))
    return rows


def _sender_id(event: Mapping[str, Any]) -> str | None:
    """The eventID an event names itself with, when it is the sender's own (not a hash ID, which names
    its event) and the event is not an error declaration (which shares the ID of the event it corrects)."""
    event_id = event.get("eventID")
    if not isinstance(event_id, str) or _HASH_ID.match(event_id) or "errorDeclaration" in event:
        return None
    return event_id


# --- planning ------------------------------------------------------------------------------------------


def _need(event: Any, name: str, what: str) -> Any:
    value = event.extension(name)
    if value is None or value == "":
        raise MappingError(f"needs {name} ({what})", field=name)
    return value


def _location(place: Any, what: str = "bizLocation") -> UUID:
    if place is None:
        raise MappingError(f"needs a {what} (the SGLN of a Lotline location)", field=what)
    return Location.create_id(ids.require(place.id, "sgln").key)


def _source_and_destination(e: ObjectEvent) -> tuple[UUID, UUID]:
    """The places a shipping event goes from and to (its source and destination of type location)."""
    source = next((s.source for s in e.sourceList or [] if cbv_word(s.type) == "location"), None)
    dest = next((d.destination for d in e.destinationList or [] if cbv_word(d.type) == "location"), None)
    if source is None or dest is None:
        raise MappingError("needs a source and a destination of type location (SGLN)", field="sourceList")
    place = Location.create_id
    return place(ids.require(source, "sgln").key), place(ids.require(dest, "sgln").key)


def _lot(q: QuantityElement) -> tuple[str, str]:
    key = ids.require(q.epcClass, "lgtin")
    return key.gtin, key.serial


def _quantity(q: QuantityElement) -> Quantity:
    if q.quantity is None:
        raise MappingError(f"{q.epcClass} needs a quantity", field="quantity")
    if q.uom is None:
        return Quantity.of(q.quantity, "unit")
    if q.uom not in m.UNIT_OF:
        raise MappingError(
            f"unit of measure {q.uom} is not one Lotline records (KGM, GRM, MGM or a count)", field="uom"
        )
    return Quantity.of(q.quantity, m.UNIT_OF[q.uom])


def _kits(epcs: Iterable[str]) -> list[UUID]:
    found = []
    for epc in epcs:
        key = ids.require(epc, "sgtin")
        found.append(Kit.create_id(key.gtin, key.serial))
    if not found:
        raise MappingError("names no kit (SGTIN)", field="epcList")
    return found


def _date(value: Any, name: str) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise MappingError(f"{name} {value!r} is not a date (YYYY-MM-DD)", field=name) from None


def _temperature(event: Any) -> tuple[Decimal | None, Decimal | None]:
    """The lowest and highest temperature (°C) of the event's sensor reports."""
    low = high = None
    for element in event.sensorElementList or []:
        for report in element.sensorReport:
            if report.type not in ("Temperature", "https://gs1.org/voc/Temperature", "gs1:Temperature"):
                continue
            if report.uom not in (None, "CEL"):
                raise MappingError(f"temperatures are recorded in CEL, not {report.uom}", field="uom")
            lows = [v for v in (report.minValue, report.value) if v is not None]
            highs = [v for v in (report.maxValue, report.value) if v is not None]
            low = min([*lows, *([low] if low is not None else [])], default=None)
            high = max([*highs, *([high] if high is not None else [])], default=None)
    return low, high


def _shipment_number(event: Any) -> str:
    number = event.extension("lotline:shipmentNumber")
    if number:
        return str(number)
    for bt in event.bizTransactionList or []:
        if cbv_word(bt.type) == "desadv" and bt.bizTransaction.startswith("urn:epcglobal:cbv:bt:"):
            return bt.bizTransaction.rsplit(":", 1)[1]
    raise MappingError(
        "needs the shipment number (lotline:shipmentNumber or a desadv business transaction)",
        field="bizTransactionList",
    )


def _optional_shipment_number(event: Any) -> str | None:
    try:
        return _shipment_number(event)
    except MappingError:
        return None


def _travelling_in(ledger: Ledger, epcs: Sequence[tuple[str, str]]) -> UUID:
    """The one shipment every named kit is in transit with."""
    found = set()
    for epc, _ in epcs:
        key = ids.require(epc, "sgtin")
        found.add(ledger.peek(Kit, Kit.create_id(key.gtin, key.serial)).shipment_id)
    if len(found) != 1 or None in found:
        raise MappingError(
            "the received kits are not all in transit in one shipment; name the shipment "
            "(lotline:shipmentNumber or a desadv business transaction)"
        )
    return found.pop()  # type: ignore[return-value]


def _actor_of(event: Any) -> Any:
    return event.extension("lotline:actor") or event.extension("lotline:performedBy")


def _exists(ledger: Ledger, cls: type, ident: UUID) -> bool:
    """Whether the aggregate is in the store or staged by the capture's earlier steps."""
    try:
        ledger.peek(cls, ident)
    except NotFound:
        return False
    return True


class Planner:
    """Turns the events of one validated document into ledger commands."""

    def __init__(self, doc: EPCISDocument, hashes: Sequence[str]) -> None:
        self.doc = doc
        self.events = doc.epcisBody.eventList
        self.hashes = hashes
        self.claimed: set[int] = set()

    def plan(self) -> tuple[list[Step], list[EventError]]:
        planned, errors = [], []
        self.by_id = {(e.eventID or self.hashes[i]): i for i, e in enumerate(self.events)}
        self.by_id.update({h: i for i, h in enumerate(self.hashes)})
        self.packing = {
            e.parentID: i
            for i, e in enumerate(self.events)
            if isinstance(e, AggregationEvent) and e.action == "ADD" and e.parentID
        }
        self.correctives = {
            self.by_id[c]
            for e in self.events
            if e.errorDeclaration is not None
            for c in e.errorDeclaration.correctiveEventIDs
            if c in self.by_id
        }
        i = 0
        while i < len(self.events):
            if i in self.claimed or i in self.correctives or self._shipped_later(i):
                i += 1
                continue
            try:
                step = self._step(i)
                planned.append(step)
                self.claimed.update(step.indices)
            except LedgerError as problem:
                errors.append(EventError(i, problem.code, problem.message, self.hashes[i]))
            i += 1
        for i, event in enumerate(self.events):
            if (
                isinstance(event, AggregationEvent)
                and i not in self.claimed
                and not any(err.index == i for err in errors)
            ):
                errors.append(
                    EventError(
                        i,
                        MappingError.code,
                        "a packing AggregationEvent is recorded with the "
                        "shipping ObjectEvent of its SSCC, and this document has none",
                        self.hashes[i],
                    )
                )
        for i in self.correctives - self.claimed:
            errors.append(
                EventError(
                    i, MappingError.code, "corrective event without its error declaration", self.hashes[i]
                )
            )
        return planned, errors

    def _shipped_later(self, i: int) -> bool:
        """A packing event whose shipper a later shipping event names: planned with that event."""
        e = self.events[i]
        return (
            isinstance(e, AggregationEvent)
            and e.action == "ADD"
            and any(
                isinstance(o, ObjectEvent) and o.biz_step == "shipping" and e.parentID in o.epcList
                for o in self.events[i + 1 :]
            )
        )

    # --- dispatch ---------------------------------------------------------------------------------

    def _step(self, i: int) -> Step:
        e = self.events[i]
        if e.extension("lotline:recall") is not None:
            raise MappingError(RECALL_STEP_REFUSED, field="lotline:recall")
        if isinstance(e, TransformationEvent):
            return self._transformation(i, e)
        if isinstance(e, AggregationEvent):
            raise MappingError(
                f"an AggregationEvent with action {e.action} and bizStep {e.bizStep} has no "
                "Lotline step (packing is recorded with its shipping event)"
            )
        if not isinstance(e, ObjectEvent):
            raise MappingError(f"Lotline records no step for a {e.type}")
        if e.errorDeclaration is not None:
            return self._correction(i, e)
        step, disp = e.biz_step, e.disposition_word
        handler = _OBJECT_STEPS.get((step, disp)) or _OBJECT_STEPS.get((step, None))
        if handler is None:
            what = f"bizStep {e.bizStep or '(none)'}"
            what += f" with disposition {e.disposition}" if e.disposition else " without a disposition"
            raise MappingError(f"no Lotline step for {what}")
        return handler(self, i, e)

    # --- transformations --------------------------------------------------------------------------

    def _transformation(self, i: int, e: TransformationEvent) -> Step:
        if e.outputEPCList:
            return self._packaging(i, e)
        if e.outputQuantityList:
            return self._formulation(i, e)
        raise MappingError("a TransformationEvent without outputs has no Lotline step")

    def _batch_number(self, e: Any, prefix: str) -> str:
        tid = e.transformationID or ""
        if tid.startswith(prefix):
            return tid[len(prefix) :]
        return str(_need(e, "lotline:batchNumber", "the batch number"))

    def _formulation(self, i: int, e: TransformationEvent) -> Step:
        if len(e.outputQuantityList) != 1:
            raise MappingError(
                "a formulation produces exactly one drug-product lot", field="outputQuantityList"
            )
        out = e.outputQuantityList[0]
        gtin, lot_number = _lot(out)
        ilmd = e.ilmd or {}
        expires = ilmd.get("cbvmda:itemExpirationDate")
        if expires is None:
            raise MappingError("needs ilmd cbvmda:itemExpirationDate of the drug-product lot", field="ilmd")
        retest = ilmd.get("lotline:retestOn")
        output = OutputLot(
            gtin=gtin,
            lot_number=lot_number,
            material=str(ilmd.get("lotline:material") or _need(e, "lotline:product", "the product")),
            expires_on=_date(expires, "itemExpirationDate"),
            retest_on=_date(retest, "retestOn") if retest else None,
        )
        inputs = [(Lot.create_id(*_lot(q)), _quantity(q)) for q in e.inputQuantityList]
        theoretical = _need(e, "lotline:theoreticalYield", "the theoretical yield, e.g. {amount, unit}")
        checker = _need(e, "lotline:checkedBy", "who did the second-person check: {principal, role, name}")
        product = str(_need(e, "lotline:product", "the product name"))
        location = _location(e.bizLocation or e.readPoint)
        command = Formulate(
            batch_number=self._batch_number(e, m.BATCH_ID),
            product=product,
            location_id=location,
            inputs=inputs,
            output=output,
            theoretical_yield=Quantity.of(theoretical["amount"], theoretical["unit"]),
            actual_yield=_quantity(out),
            equipment=list(e.extension("lotline:equipment") or []),
            checked_by=_person(checker),
            yield_limits=e.extension("lotline:yieldLimits"),
            placebo=bool(e.extension("lotline:placebo", False)),
            deviation=e.extension("lotline:yieldDeviation"),
            occurred_at=e.eventTime,
        )
        return Step([i], "record a formulation", (Role.MANUFACTURING,), command, _actor_of(e))

    def _packaging(self, i: int, e: TransformationEvent) -> Step:
        arms = e.extension("lotline:arms")
        allocation = e.extension("lotline:allocation")
        if not arms or not allocation:
            raise MappingError(
                "packaging needs the kit list: lotline:arms and lotline:allocation (an unblinded "
                "export); a blinded document cannot create kits",
                field="lotline:allocation",
            )
        kits = [ids.require(k, "sgtin") for k in e.outputEPCList]
        gtins = {k.gtin for k in kits}
        if len(gtins) != 1:
            raise MappingError("the kits of one packaging run share one GTIN", field="outputEPCList")
        arm_lots = {}
        for a in arms:
            gtin, lot_number = ids.require(a["lot"], "lgtin").gtin, ids.require(a["lot"], "lgtin").serial
            arm_lots[a["treatment"]] = Arm(
                treatment=a["treatment"],
                dp_lot_id=Lot.create_id(gtin, lot_number),
                units_per_kit=int(a["unitsPerKit"]),
                units_issued=int(a["unitsIssued"]),
                samples=int(a.get("samples", 0)),
                rejects=int(a.get("rejects", 0)),
            )
        kit_list = [(str(x["kit"]), str(x["treatment"])) for x in allocation]
        if {n for n, _ in kit_list} != {k.serial for k in kits}:
            raise MappingError(
                "lotline:allocation and outputEPCList name different kits", field="lotline:allocation"
            )
        dp = {a.dp_lot_id for a in arm_lots.values()}
        components = [
            (Lot.create_id(*_lot(q)), _quantity(q))
            for q in e.inputQuantityList
            if Lot.create_id(*_lot(q)) not in dp
        ]
        trial = str(_need(e, "lotline:trial", "the trial"))
        trial_code = trial[len(m.TRIAL_ID) :] if trial.startswith(m.TRIAL_ID) else trial
        checker = _need(e, "lotline:checkedBy", "who did the second-person check")
        label = (e.ilmd or {}).get("lotline:labelVersion") or _need(
            e, "lotline:labelVersion", "the label version"
        )
        command = Package(
            batch_number=self._batch_number(e, m.PACKAGING_ID),
            trial_id=Trial.create_id(trial_code),
            location_id=_location(e.bizLocation or e.readPoint),
            kit_gtin=next(iter(gtins)),
            label_version=str(label),
            arms=list(arm_lots.values()),
            kit_list=kit_list,
            components=components,
            checked_by=_person(checker),
            occurred_at=e.eventTime,
        )
        return Step([i], "package kits", (Role.MANUFACTURING,), command, _actor_of(e))

    # --- lots ---------------------------------------------------------------------------------------

    def _receive_lot(self, i: int, e: ObjectEvent) -> Step:
        if e.action != "ADD" or len(e.quantityList) != 1:
            raise MappingError("a lot receipt is an ObjectEvent ADD with one LGTIN in quantityList")
        gtin, lot_number = _lot(e.quantityList[0])
        ilmd = e.ilmd or {}
        expires = ilmd.get("cbvmda:itemExpirationDate") or _need(e, "cbvmda:itemExpirationDate", "expiry")
        made = ilmd.get("lotline:manufacturedOn")
        if made is None:
            raise MappingError("needs ilmd lotline:manufacturedOn", field="ilmd")
        kind, material = ilmd.get("lotline:kind"), ilmd.get("lotline:material")
        if not kind or not material:
            raise MappingError("needs ilmd lotline:kind and lotline:material", field="ilmd")
        retest = ilmd.get("lotline:retestOn")
        command = ReceiveLot(
            gtin=gtin,
            lot_number=lot_number,
            kind=kind,
            material=material,
            location_id=_location(e.bizLocation or e.readPoint),
            quantity=_quantity(e.quantityList[0]),
            manufactured_on=_date(made, "manufacturedOn"),
            expires_on=_date(expires, "itemExpirationDate"),
            retest_on=_date(retest, "retestOn") if retest else None,
            supplier=ilmd.get("lotline:supplier"),
            supplier_lot=ilmd.get("lotline:supplierLot"),
            occurred_at=e.eventTime,
        )
        return Step([i], "receive a lot", (Role.MANUFACTURING, Role.DEPOT), command, _actor_of(e))

    def _transfer(self, i: int, e: ObjectEvent) -> Step:
        """A lot (one LGTIN in quantityList) sent from one place to another under a transfer number."""
        if len(e.quantityList) != 1:
            raise MappingError("a lot transfer names one lot (LGTIN) in quantityList")
        from_id, to_id = _source_and_destination(e)
        command = TransferLot(
            lot_id=Lot.create_id(*_lot(e.quantityList[0])),
            transfer_number=str(_need(e, "lotline:transferNumber", "the transfer's shipping document")),
            from_id=from_id,
            to_id=to_id,
            occurred_at=e.eventTime,
        )
        return Step([i], "send a lot", (Role.MANUFACTURING, Role.DEPOT), command, _actor_of(e))

    def _transfer_received(self, i: int, e: ObjectEvent) -> Step:
        """A transferred lot received at the event's place: in progress, or damaged with the reason."""
        if len(e.quantityList) != 1:
            raise MappingError("a lot transfer's receipt names one lot (LGTIN) in quantityList")
        intact = e.disposition_word != "damaged"
        if e.disposition_word not in ("in_progress", "damaged", None):
            raise MappingError(f"a lot transfer is received in_progress or damaged, not {e.disposition}")
        reason = e.extension("lotline:reason")
        command = ReceiveLotTransfer(
            lot_id=Lot.create_id(*_lot(e.quantityList[0])),
            location_id=_location(e.bizLocation or e.readPoint),
            intact=intact,
            remarks=str(reason) if reason else None,
            occurred_at=e.eventTime,
        )
        return Step([i], "receive a lot", (Role.MANUFACTURING, Role.DEPOT), command, _actor_of(e))

    def _correction(self, i: int, e: ObjectEvent) -> Step:
        declaration = e.errorDeclaration
        assert declaration is not None
        fixes = [self.by_id[c] for c in declaration.correctiveEventIDs if c in self.by_id]
        if len(fixes) != 1 or len(e.quantityList) != 1:
            raise MappingError(
                "Lotline records an error declaration of a lot receipt with exactly one corrective "
                "receipt in the same document"
            )
        fix = self.events[fixes[0]]
        if (
            not isinstance(fix, ObjectEvent)
            or len(fix.quantityList) != 1
            or fix.quantityList[0].epcClass != e.quantityList[0].epcClass
        ):
            raise MappingError("the corrective event must be a receipt of the same lot")
        lot_id = Lot.create_id(*_lot(e.quantityList[0]))
        qty = _quantity(fix.quantityList[0])
        version = int(fix.extension("lotline:correctsVersion") or 1)
        reason = declaration.extension("lotline:reason") or e.extension("lotline:reason")
        if not reason:
            raise MappingError("needs lotline:reason in the errorDeclaration", field="errorDeclaration")
        command = CorrectLotQuantity(
            lot_id=lot_id,
            corrects_version=version,
            quantity=qty,
            reason=str(reason),
            occurred_at=declaration.declarationTime,
        )
        return Step([i, fixes[0]], "correct a lot", (Role.QA,), command)

    def _lot_or_run(self, i: int, e: ObjectEvent) -> Step:
        """inspecting + conformant/non_conformant: QA on a lot, a packaged batch, or quarantined kits."""
        if e.epcList:
            return self._quarantine_decision(i, e)
        if len(e.quantityList) != 1:
            raise MappingError("a QA decision names one lot or packaged batch (LGTIN) in quantityList")
        gtin, number = _lot(e.quantityList[0])
        passed = e.disposition_word == "conformant"
        reason = e.extension("lotline:reason")
        results = e.extension("lotline:resultsRef")
        lot_id, run_id = Lot.create_id(gtin, number), PackagingRun.create_id(number)

        def decision(ledger: Ledger) -> Command:
            """A packaged batch's disposition if the LGTIN names no lot but a batch, else the lot's."""
            if not _exists(ledger, Lot, lot_id) and _exists(ledger, PackagingRun, run_id):
                if ledger.peek(PackagingRun, run_id).kit_gtin != gtin:
                    raise MappingError(f"{e.quantityList[0].epcClass} is neither a lot nor a packaged batch")
                return DisposePackaging(
                    run_id=run_id, released=passed, signature=None, reason=reason, occurred_at=e.eventTime
                )
            if passed:
                if not results:
                    raise MappingError("a lot release needs lotline:resultsRef (test results or CoA)")
                return ReleaseLot(
                    lot_id=lot_id, signature=None, results_ref=str(results), occurred_at=e.eventTime
                )
            return RejectLot(
                lot_id=lot_id,
                signature=None,
                reason=str(_need(e, "lotline:reason", "why")),
                results_ref=results,
                occurred_at=e.eventTime,
            )

        meaning = Meaning.RELEASED if passed else Meaning.REJECTED
        return Step([i], "decide on a lot", (Role.QA,), decision, _actor_of(e), meaning)

    def _receiving(self, i: int, e: ObjectEvent) -> Step:
        """A lot received (ADD of an LGTIN), a kit returned at a site (by its subject: with its
        `lotline:condition`), kits a site sent back received at a depot, or a shipment's receipt."""
        if e.disposition_word == "returned":
            if e.extension("lotline:condition") is None:
                return self._returned_to_depot(i, e)
            return self._return(i, e)
        if e.action == "ADD" and e.quantityList:
            return self._receive_lot(i, e)
        if e.quantityList and not e.epcList:
            return self._transfer_received(i, e)
        return self._receipt(i, e)

    @staticmethod
    def lot_status(action: str) -> Callable[[Planner, int, ObjectEvent], Step]:
        """The planner of a recall or hold of one lot."""

        def plan(self: Planner, i: int, e: ObjectEvent) -> Step:
            if len(e.quantityList) != 1:
                raise MappingError(f"to {action} a lot, name it (LGTIN) in quantityList")
            lot_id = Lot.create_id(*_lot(e.quantityList[0]))
            reason = str(_need(e, "lotline:reason", "why"))
            if action == "recall":
                recall = RecallLot(lot_id=lot_id, signature=None, reason=reason, occurred_at=e.eventTime)
                return Step([i], f"{action} a lot", (Role.QA,), recall, _actor_of(e), Meaning.APPROVED)
            hold = HoldLot(lot_id=lot_id, reason=reason, occurred_at=e.eventTime)
            return Step([i], f"{action} a lot", (Role.QA,), hold, _actor_of(e))

        return plan

    def _deviation(self, i: int, e: ObjectEvent) -> Step:
        number = str(_need(e, "lotline:batchNumber", "the batch number"))
        d = _need(e, "lotline:deviation", "{number, description, classification}")
        command = RecordDeviation(
            batch_id=ManufacturingBatch.create_id(number),
            number=d["number"],
            description=d["description"],
            classification=d["classification"],
            occurred_at=e.eventTime,
        )
        return Step([i], "record a deviation", (Role.MANUFACTURING, Role.QA), command, _actor_of(e))

    # --- packaged batches ------------------------------------------------------------------------------

    def _run_of(self, e: ObjectEvent) -> UUID:
        if len(e.quantityList) != 1:
            raise MappingError("name the packaged batch (kit GTIN + batch number, LGTIN) in quantityList")
        return PackagingRun.create_id(_lot(e.quantityList[0])[1])

    def _certify(self, i: int, e: ObjectEvent) -> Step:
        command = CertifyPackaging(run_id=self._run_of(e), signature=None, occurred_at=e.eventTime)
        return Step([i], "certify a batch", (Role.QP,), command, _actor_of(e), Meaning.CERTIFIED)

    def _sponsor_release(self, i: int, e: ObjectEvent) -> Step:
        command = SponsorRelease(
            run_id=self._run_of(e),
            country=str(_need(e, "lotline:country", "the country released for")),
            signature=None,
            occurred_at=e.eventTime,
        )
        return Step(
            [i], "sponsor-release a batch", (Role.QA,), command, _actor_of(e), Meaning.SPONSOR_RELEASED
        )

    def _relabel(self, i: int, e: ObjectEvent) -> Step:
        command = ExtendExpiry(
            run_id=self._run_of(e),
            new_expiry=_date(_need(e, "lotline:newExpiry", "the new expiry date"), "newExpiry"),
            signature=None,
            reason=str(_need(e, "lotline:reason", "why")),
            occurred_at=e.eventTime,
        )
        return Step([i], "extend expiry", (Role.QA,), command, _actor_of(e), Meaning.RELABELLED)

    # --- distribution ------------------------------------------------------------------------------------

    def _ship(self, i: int, e: ObjectEvent) -> Step:
        if e.quantityList and not e.epcList:
            return self._transfer(i, e)
        ssccs = [k for k in (ids.parse(x) for x in e.epcList) if k is not None and k.kind == "sscc"]
        if not ssccs and e.epcList and e.disposition_word == "in_transit":
            return self._send_back(i, e)
        if len(ssccs) != 1:
            raise MappingError("a shipping event names one shipper (SSCC) in epcList")
        sscc = ssccs[0]
        packed = self.packing.get(sscc.uri)
        if packed is None:
            raise MappingError(f"no packing AggregationEvent for {sscc.uri} in this document")
        kits = _kits(self.events[packed].childEPCs)  # type: ignore[union-attr]
        from_id, to_id = _source_and_destination(e)
        transit = _need(
            e, "lotline:transitRange", "the allowed transit temperatures {minCelsius, maxCelsius}"
        )
        command = Ship(
            shipment_number=_shipment_number(e),
            sscc=sscc.key,
            from_id=from_id,
            to_id=to_id,
            kit_ids=kits,
            min_celsius=Decimal(str(transit["minCelsius"])),
            max_celsius=Decimal(str(transit["maxCelsius"])),
            logger_id=e.extension("lotline:logger"),
            carrier=e.extension("lotline:carrier"),
            occurred_at=e.eventTime,
        )
        return Step([packed, i], "ship kits", (Role.DEPOT,), command, _actor_of(e))

    def _send_back(self, i: int, e: ObjectEvent) -> Step:
        """Kits (SGTINs, no shipper) a site sends back to a depot outside a recall, with the reason."""
        site_id, depot_id = _source_and_destination(e)
        command = ReturnToDepot(
            site_id=site_id,
            depot_id=depot_id,
            kit_ids=_kits(e.epcList),
            reason=str(_need(e, "lotline:reason", "why the kits go back")),
            occurred_at=e.eventTime,
        )
        return Step([i], "send kits back", (Role.SITE,), command, _actor_of(e))

    def _returned_to_depot(self, i: int, e: ObjectEvent) -> Step:
        """Kits a site sent back outside a recall, received at the depot (the event's place)."""
        depot = _location(e.bizLocation or e.readPoint)
        command = ReceiveReturnedKits(depot_id=depot, kit_ids=_kits(e.epcList), occurred_at=e.eventTime)
        return Step([i], "receive returned kits", (Role.DEPOT,), command, _actor_of(e))

    def _receipt(self, i: int, e: ObjectEvent) -> Step:
        """The receiving events of one shipment at one time (one per outcome) as one receipt.

        Without a shipment number (a site scanning the kits it received), the shipment is the one
        the kits are travelling in.
        """
        number = _optional_shipment_number(e)
        group = [i]
        j = i + 1
        while j < len(self.events):
            o = self.events[j]
            if not (
                isinstance(o, ObjectEvent)
                and o.biz_step == "receiving"
                and o.eventTime == e.eventTime
                and o.disposition_word != "returned"
                and o.epcList  # a lot's receipt (LGTIN quantities) is a step of its own
            ):
                break
            if _optional_shipment_number(o) != number:
                break
            group.append(j)
            j += 1
        events = [self.events[k] for k in group]
        if not any(o.epcList for o in events):  # type: ignore[union-attr]
            raise MappingError(
                "a receipt names the kits (SGTIN) or the shipper (SSCC) received; Lotline "
                "receives a lot (an LGTIN in quantityList) from a supplier with action ADD, "
                "or one transferred to it with action OBSERVE"
            )
        site = _location(e.bizLocation or e.readPoint)
        low = high = None
        epcs: list[tuple[str, str]] = []
        for o in events:
            outcome = _OUTCOME.get(o.disposition_word or "")
            if outcome is None:
                raise MappingError(
                    f"a receipt's disposition is in_progress, {m.QUARANTINED}, damaged or {m.MISSING}, "
                    f"not {o.disposition}"
                )
            epcs += [(epc, outcome) for epc in o.epcList]  # type: ignore[union-attr]
            lo, hi = _temperature(o)
            low = lo if low is None or (lo is not None and lo < low) else low
            high = hi if high is None or (hi is not None and hi > high) else high

        def receipt(ledger: Ledger) -> Command:
            """The receipt of the shipment, per kit number (a shipper's SSCC stands for all its kits)."""
            outcomes: dict[str, str] = {}
            shipment_id = Shipment.create_id(number) if number else _travelling_in(ledger, epcs)
            shipment = ledger.peek(Shipment, shipment_id)
            if not number and shipment.to_id != site:
                # found from the kits alone: say nothing of a shipment to another place (its number)
                raise MappingError("no shipment in transit to this place holds the received kits")
            for epc, outcome in epcs:
                key = ids.require(epc, "sgtin", "sscc")
                if key.kind == "sscc":
                    if key.key != shipment.sscc:
                        raise MappingError(f"{epc} is not the shipper of shipment {shipment.shipment_number}")
                    outcomes.update({n: outcome for n in shipment.kit_numbers})
                else:
                    outcomes[key.serial] = outcome
            return ConfirmReceipt(
                shipment_id=shipment_id,
                site_id=site,
                outcomes=outcomes,
                logger_min=low,
                logger_max=high,
                occurred_at=e.eventTime,
            )

        # at a site by its staff; at a depot (a transfer of stock between depots) by the depot's
        return Step(group, "confirm a receipt", (Role.SITE, Role.DEPOT), receipt, _actor_of(e))

    # --- kits at sites --------------------------------------------------------------------------------------

    def _excursion(self, i: int, e: ObjectEvent) -> Step:
        kits, site = _kits(e.epcList), _location(e.bizLocation or e.readPoint)
        low, high = _temperature(e)
        if low is None or high is None:
            raise MappingError("an excursion needs a Temperature sensor report with minValue and maxValue")
        command = ReportExcursion(
            location_id=site,
            kit_ids=kits,
            min_celsius=low,
            max_celsius=high,
            duration_minutes=int(_need(e, "lotline:durationMinutes", "how long the excursion lasted")),
            occurred_at=e.eventTime,
        )
        return Step([i], "report an excursion", (Role.SITE, Role.DEPOT), command, _actor_of(e))

    def _quarantine_decision(self, i: int, e: ObjectEvent) -> Step:
        release = e.disposition_word == "conformant"
        command = DecideQuarantine(
            kit_ids=_kits(e.epcList),
            release=release,
            signature=None,
            reason=str(_need(e, "lotline:reason", "why")),
            occurred_at=e.eventTime,
        )
        meaning = Meaning.RELEASED if release else Meaning.REJECTED
        return Step([i], "decide on quarantined kits", (Role.QA,), command, _actor_of(e), meaning)

    def _dispense(self, i: int, e: ObjectEvent) -> Step:
        (kit,) = _one_kit(e)
        command = Dispense(
            kit_id=kit,
            site_id=_location(e.bizLocation or e.readPoint),
            subject=str(_need(e, "lotline:subject", "the subject")),
            occurred_at=e.eventTime,
        )
        return Step([i], "dispense a kit", (Role.SITE,), command, _actor_of(e))

    def _return(self, i: int, e: ObjectEvent) -> Step:
        (kit,) = _one_kit(e)
        site = _location(e.bizLocation or e.readPoint)
        condition = str(_need(e, "lotline:condition", "used, unused or partially_used"))
        command = ReturnKit(kit_id=kit, site_id=site, condition=condition, occurred_at=e.eventTime)
        return Step([i], "return a kit", (Role.SITE,), command, _actor_of(e))

    def _authorise_destruction(self, i: int, e: ObjectEvent) -> Step:
        command = AuthoriseDestruction(
            kit_ids=_kits(e.epcList),
            signature=None,
            reason=str(_need(e, "lotline:reason", "why")),
            occurred_at=e.eventTime,
        )
        return Step(
            [i], "authorise destruction", (Role.QA,), command, _actor_of(e), Meaning.AUTHORISED_DESTRUCTION
        )

    def _destroy(self, i: int, e: ObjectEvent) -> Step:
        """Kits destroyed where they are held: the event's place (bizLocation, or its readPoint)."""
        command = DestroyKits(
            location_id=_location(e.bizLocation or e.readPoint),
            kit_ids=_kits(e.epcList),
            certificate=str(_need(e, "lotline:certificate", "the destruction certificate number")),
            method=str(_need(e, "lotline:method", "how the kits were destroyed")),
            occurred_at=e.eventTime,
        )
        return Step([i], "destroy kits", (Role.DEPOT, Role.SITE), command, _actor_of(e))

    # --- master data ---------------------------------------------------------------------------------------

    def master_data(self, ledger: Ledger, actors: Actors) -> list[EventError]:
        """Register the trials and locations of the header that the ledger does not know yet."""
        errors: list[EventError] = []
        header = self.doc.epcisHeader
        vocabularies = header.epcisMasterData.vocabularyList if header and header.epcisMasterData else []
        trials = [v for v in vocabularies if v.type == m.ext("Trial")]
        places = [v for v in vocabularies if v.type == "urn:epcglobal:epcis:vtype:BusinessLocation"]
        for element in (el for v in trials for el in v.vocabularyElementList):
            self._master(errors, element.id, partial(_register_trial, ledger, actors, element))
        for element in (el for v in places for el in v.vocabularyElementList):
            self._master(errors, element.id, partial(_register_location, ledger, actors, element))
        return errors

    @staticmethod
    def _master(errors: list[EventError], ident: str, step: Callable[[], Any]) -> None:
        try:
            step()
        except LedgerError as e:
            errors.append(EventError(None, e.code, f"master data {ident}: {e.message}"))


def _one_kit(e: ObjectEvent) -> list[UUID]:
    kits = _kits(e.epcList)
    if len(kits) != 1:
        raise MappingError("names exactly one kit (SGTIN) in epcList", field="epcList")
    return kits


def _person(value: Any) -> Actor:
    try:
        return Actor(str(value["principal"]), Role(value["role"]), str(value["name"]))
    except (KeyError, TypeError, ValueError):
        raise MappingError(
            "a person is {principal, role, name} with a Lotline role", field="checkedBy"
        ) from None


def _register_trial(ledger: Ledger, actors: Actors, el: Any) -> None:
    if not el.id.startswith(m.TRIAL_ID):
        raise MappingError(f"a trial is named {m.TRIAL_ID}<code>")
    code = el.id[len(m.TRIAL_ID) :]
    if _exists(ledger, Trial, Trial.create_id(code)):
        return
    actor = actors.pick("register a trial", [Role.ADMIN])
    command = RegisterTrial(
        code=code,
        title=str(el.attribute(m.ext("title"), code)),
        sponsor=str(el.attribute(m.ext("sponsor"), "")),
        countries=str(el.attribute(m.ext("countries"), "")).split(),
        do_not_ship_days=int(el.attribute(m.ext("doNotShipDays"), 0)),
        do_not_dispense_days=int(el.attribute(m.ext("doNotDispenseDays"), 0)),
        occurred_at=_at(el.attribute(m.ext("registeredAt"))),
    )
    ledger.handle(command, actor)


def _register_location(ledger: Ledger, actors: Actors, el: Any) -> None:
    key = ids.require(el.id, "sgln")
    location_id = Location.create_id(key.key)
    if not _exists(ledger, Location, location_id):
        actor = actors.pick("register a location", [Role.ADMIN])
        trial = el.attribute(m.ext("trial"))
        name = el.attribute("urn:epcglobal:cbv:mda#name")
        country = el.attribute("urn:epcglobal:cbv:mda#countryCode")
        kind = el.attribute(m.ext("locationKind"))
        if not (name and country and kind):
            raise MappingError("a new location needs its name, countryCode and lotline locationKind")
        command = RegisterLocation(
            gln=key.key,
            kind=kind,
            name=name,
            country=country,
            trial_id=Trial.create_id(trial[len(m.TRIAL_ID) :]) if trial else None,
            site_number=el.attribute(m.ext("siteNumber")),
            address=el.attribute("urn:epcglobal:cbv:mda#streetAddressOne") or "",
            occurred_at=_at(el.attribute(m.ext("registeredAt"))),
        )
        ledger.handle(command, actor)
    activated = el.attribute(m.ext("activatedAt"))
    if activated and ledger.peek(Location, location_id).status != "activated":
        actor = actors.pick("activate a site", [Role.ADMIN])
        ledger.handle(ActivateSite(site_id=location_id, occurred_at=_at(activated)), actor)


def _at(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise MappingError(f"{value!r} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        raise MappingError(f"{value!r} has no time zone")
    return when


_OUTCOME = {"in_progress": "received", m.QUARANTINED: "received", "damaged": "damaged", m.MISSING: "missing"}

_OBJECT_STEPS: dict[tuple[str | None, str | None], Callable[[Planner, int, ObjectEvent], Step]] = {
    ("receiving", None): Planner._receiving,
    ("commissioning", None): Planner._receive_lot,
    ("inspecting", "conformant"): Planner._lot_or_run,
    ("inspecting", "non_conformant"): Planner._lot_or_run,
    ("holding", "recalled"): Planner.lot_status("recall"),
    ("holding", m.ON_HOLD): Planner.lot_status("put on hold"),
    ("holding", m.QUARANTINED): Planner._excursion,
    (m.RECORDING_DEVIATION, None): Planner._deviation,
    (m.QP_CERTIFYING, None): Planner._certify,
    (m.SPONSOR_RELEASING, None): Planner._sponsor_release,
    (m.RELABELLING, None): Planner._relabel,
    ("shipping", None): Planner._ship,
    ("dispensing", None): Planner._dispense,
    (m.AUTHORISING_DESTRUCTION, None): Planner._authorise_destruction,
    ("destroying", None): Planner._destroy,
}


def check(document: str | bytes | Mapping[str, Any]) -> list[EventError]:
    """Validation and mapping only (no ledger state): why each event could not be captured, if any."""
    try:
        raw, events_at = parsed(document)
    except ValueError as e:
        return [EventError(None, "invalid_json", str(e))]
    try:
        doc = EPCISDocument.model_validate(raw)
    except ValidationError as e:
        return _pointed_back(_invalid(e), events_at)
    nonconforming = _nonconforming(raw)
    if nonconforming:
        return _pointed_back(nonconforming, events_at)
    _, errors = Planner(doc, document_hash_ids(raw)).plan()
    return errors
