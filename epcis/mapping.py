"""Every Lotline event as EPCIS 2.0 JSON-LD events (CBV 2.0 words; Lotline extension URIs where CBV has none).

One ledger step writes several events atomically (a packaging run writes the run, the consumption of
each input lot and the commissioning of every kit); its EPCIS form comes from the step's first
event, and the events that only complete it (`Lot.Consumed`, `Kit.Commissioned`, `Kit.Shipped`,
`Kit.Received`, `Kit.Relabelled`, the drug-product lot's `Lot.Received`) map to nothing of their own.
Steps that write one event per kit (quarantine, QA decision, recall returns, destruction) become one
EPCIS event over all their kits. Trials and locations are master data, not events; recall campaigns
are not mapped, only the kits' custody moves they cause. docs/epcis.md has the table.

Blinding: unless `blinded=False`, the treatment allocation and anything that ties a kit to its
drug-product lot stay out. The packaging TransformationEvent then lists every input lot (all arms)
and every kit, kits sorted by number, with no per-arm grouping.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from epcis import ids
from epcis.conformance import STANDARD_FIELDS
from epcis.eventhash import event_hash_id
from ledger.application import Ledger
from ledger.chain import event_type
from ledger.domain import Kit, Location, Lot, PackagingRun, Shipment, Trial

LOTLINE = "https://lotline.dev/voc/"
EPCIS_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
CONTEXT: list[Any] = [EPCIS_CONTEXT, {"lotline": LOTLINE}]
KEPT_AS_SENT = (
    "bizTransactionList",
    "sourceList",
    "destinationList",
    "sensorElementList",
    "persistentDisposition",
    "certificationInfo",
)
"""Standard fields a captured event keeps as its sender wrote them: the ledger holds what it needs of
them (a shipment number, places, a temperature range), not each of their entries."""
_NOT_MATCHED = (
    "eventID",
    "recordTime",
    "eventTimeZoneOffset",
    "errorDeclaration",
    "ilmd",
    "@context",
    *KEPT_AS_SENT,
)
UNBLINDED_ONLY = ("lotline:arms", "lotline:allocation")
"""Extensions only an unblinded export carries (the treatment allocation)."""


def ext(word: str) -> str:
    """A Lotline vocabulary URI, e.g. `ext('Disp-quarantined')`."""
    return LOTLINE + word


# Where CBV 2.0 has no word (docs/epcis.md).
QUARANTINED = ext("Disp-quarantined")
ON_HOLD = ext("Disp-on_hold")
MISSING = ext("Disp-missing")
QP_CERTIFIED = ext("Disp-qp_certified")
SPONSOR_RELEASED = ext("Disp-sponsor_released")
PENDING_DESTRUCTION = ext("Disp-pending_destruction")
QP_CERTIFYING = ext("BizStep-qp_certifying")
SPONSOR_RELEASING = ext("BizStep-sponsor_releasing")
RELABELLING = ext("BizStep-relabelling")
AUTHORISING_DESTRUCTION = ext("BizStep-authorising_destruction")
RECORDING_DEVIATION = ext("BizStep-recording_deviation")
BATCH_ID = LOTLINE.replace("/voc/", "/id/") + "batch/"
PACKAGING_ID = LOTLINE.replace("/voc/", "/id/") + "packaging/"
TRIAL_ID = LOTLINE.replace("/voc/", "/id/") + "trial/"

UOM = {"kg": "KGM", "g": "GRM", "mg": "MGM"}
UNIT_OF = {v: k for k, v in UOM.items()}

# Events that only complete a step whose first event carries the EPCIS form.
COMPLETING = {"Lot.Consumed", "Kit.Commissioned", "Kit.Shipped", "Kit.Received", "Kit.Relabelled"}
# Steps with one event per kit, exported as one EPCIS event over the kits.
PER_KIT = {
    "Kit.Quarantined",
    "Kit.QuarantineReleased",
    "Kit.QuarantineRejected",
    "Kit.RecallQuarantined",
    "Kit.ReturnShipped",
    "Kit.ReturnReceived",
    "Kit.DestructionAuthorised",
    "Kit.Destroyed",
}
MASTER_DATA = {
    "Trial.Registered",
    "Trial.ExpiryWindowsChanged",
    "Location.Registered",
    "Location.Activated",
    "Location.Deactivated",
    "Location.ClosedOut",
}


@dataclass(frozen=True, slots=True)
class Source:
    """Where a step's first event sits in the chain (and its last, for steps of one event per kit)."""

    seq: int
    stream: str
    version: int
    chain_hash: bytes
    last_seq: int


@dataclass(frozen=True, slots=True)
class Step:
    """One ledger step: its decoded events (all of one type for per-kit steps) and its chain position."""

    kind: str
    events: tuple[Any, ...]
    source: Source

    @property
    def first(self) -> Any:
        return self.events[0]


class _Cache:
    """A bounded map (least recently used out), so a long export keeps a constant footprint."""

    def __init__(self, load: Callable[[UUID], Any], size: int = 20_000) -> None:
        self._load = load
        self._size = size
        self._items: OrderedDict[UUID, Any] = OrderedDict()

    def __call__(self, ident: UUID) -> Any:
        found = self._items.get(ident)
        if found is None:
            found = self._load(ident)
            self._items[ident] = found
            if len(self._items) > self._size:
                self._items.popitem(last=False)
        else:
            self._items.move_to_end(ident)
        return found


class Mapper:
    """Turns ledger steps into EPCIS event dicts (with their hash IDs) for one export."""

    def __init__(
        self, ledger: Ledger, *, blinded: bool = True, prefix_length: int = ids.DEFAULT_PREFIX_LENGTH
    ):
        self.ledger = ledger
        self.blinded = blinded
        self.prefix = prefix_length
        created = self._created
        self.lot = _Cache(lambda i: created(Lot, i))
        self.kit = _Cache(lambda i: created(Kit, i))
        self.location = _Cache(lambda i: created(Location, i), 5000)
        self.run = _Cache(lambda i: created(PackagingRun, i), 500)
        self.shipment = _Cache(lambda i: created(Shipment, i), 2000)
        self.trial = _Cache(lambda i: created(Trial, i), 100)
        self.locations_seen: set[UUID] = set()
        self.trials_seen: set[UUID] = set()

    def _created(self, cls: type, ident: UUID) -> Any:
        """The aggregate as its first event made it (identity fields never change afterwards)."""
        agg: Any = self.ledger.repository.get(ident, version=1)
        assert isinstance(agg, cls), f"{ident} is not a {cls.__name__}"
        return agg

    # --- identifiers -------------------------------------------------------------------------------

    def sgln(self, location_id: UUID) -> str:
        self.locations_seen.add(location_id)
        return ids.sgln(self.location(location_id).gln, prefix_length=self.prefix)

    def lgtin(self, lot_id: UUID) -> str:
        lot = self.lot(lot_id)
        return ids.lgtin(lot.gtin, lot.lot_number, self.prefix)

    def sgtin(self, kit_id: UUID) -> str:
        kit = self.kit(kit_id)
        return ids.sgtin(kit.gtin, kit.kit_number, self.prefix)

    def kit_sgtin(self, gtin: str, number: str) -> str:
        return ids.sgtin(gtin, number, self.prefix)

    def sscc(self, value: str) -> str:
        return ids.sscc(value, self.prefix)

    def run_class(self, run: Any) -> str:
        """The packaged batch as a class: kit GTIN + batch number (what kit labels carry)."""
        return ids.lgtin(run.kit_gtin, run.batch_number, self.prefix)

    def place(self, location_id: UUID | None) -> dict[str, Any]:
        if location_id is None:
            return {}
        where = {"id": self.sgln(location_id)}
        return {"readPoint": where, "bizLocation": where}

    # --- steps ---------------------------------------------------------------------------------------

    def map(self, step: Step) -> list[dict[str, Any]]:
        """The EPCIS events of one step, each with its eventID."""
        handler = _HANDLERS.get(step.kind)
        if handler is None:
            return []
        return [e if "eventID" in e else self.complete(e, step) for e in handler(self, step)]

    def complete(self, event: dict[str, Any], step: Step) -> dict[str, Any]:
        """The event as it is exported: a step captured from a partner's event gives that event back
        (its eventID, time zone and extensions, docs/epcis.md "Event IDs"); any other gets who did it
        and its event hash ID, which depends on nothing but the business event."""
        audit = step.first.audit
        captured = audit.get("captured_from")
        if captured:
            key = match_key(event)
            for kept in captured:
                if kept.get("match") == key:
                    return self._as_captured(event, kept)
        event["lotline:actor"] = {k: audit[k] for k in ("principal", "role", "name")}
        return finish(event)

    def _as_captured(self, event: dict[str, Any], kept: dict[str, str]) -> dict[str, Any]:
        out = {
            k: v
            for k, v in event.items()
            if (k in STANDARD_FIELDS and k not in ("ilmd", "eventID", *KEPT_AS_SENT))
            or (not self.blinded and k in UNBLINDED_ONLY)
        }
        if "fields" in kept:
            out.update(json.loads(kept["fields"]))
        for written_as_sent in ("eventTime", "eventTimeZoneOffset"):
            if written_as_sent in kept:
                out[written_as_sent] = kept[written_as_sent]
        if kept.get("unblinded") and self.blinded:
            return finish(out)  # not the event the partner sent: the allocation it carried stays out
        return {"eventID": kept["eventID"], **out}


def match_key(event: Mapping[str, Any]) -> str:
    """What tells the EPCIS events of one step apart, whatever ID, time zone, extensions and fields kept
    as sent they carry: the event hash of the standard fields the ledger gives back, 16 hex digits."""
    core = {k: v for k, v in event.items() if k in STANDARD_FIELDS and k not in _NOT_MATCHED}
    return event_hash_id(core).split(";", 1)[1][:16]


def instant(event_time: str) -> datetime | None:
    """The instant an eventTime names, in any form RFC 3339 writes it (`z` and `t` too, any number of
    fraction digits: microseconds kept); None for one Python cannot read (a leap second)."""
    try:
        return datetime.fromisoformat(event_time.upper().replace("Z", "+00:00"))
    except ValueError:
        return None


def finish(event: dict[str, Any]) -> dict[str, Any]:
    """Put `eventID` (the GS1 event hash) first, as exported documents show it."""
    event.pop("eventID", None)
    return {"eventID": event_hash_id(event, CONTEXT), **event}


def _when(e: Any, at: str | None = None) -> dict[str, Any]:
    occurred = at or e.audit["occurred_at"]
    return {
        "eventTime": occurred.replace("+00:00", "Z"),
        "eventTimeZoneOffset": "+00:00",
        "recordTime": _record_time(e),
    }


def _record_time(e: Any) -> str:
    ts: datetime = e.timestamp
    return ts.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _number(amount: Any) -> float | int:
    value = Decimal(str(amount))
    return int(value) if value == value.to_integral_value() else float(value)


def quantity(epc_class: str, q: dict[str, str]) -> dict[str, Any]:
    """A quantityElement of a Lotline quantity (mass in KGM/GRM/MGM; units as a plain count)."""
    element: dict[str, Any] = {"epcClass": epc_class, "quantity": _number(q["amount"])}
    if q["unit"] in UOM:
        element["uom"] = UOM[q["unit"]]
    return element


def _iso(d: date | None) -> str | None:
    return None if d is None else d.isoformat()


def _reason(e: Any) -> dict[str, Any]:
    reason = e.audit.get("reason")
    return {"lotline:reason": reason} if reason else {}


def _object(e: Any, action: str, step: str | None, disposition: str | None, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "ObjectEvent", **_when(e), "action": action}
    event.update({k: v for k, v in fields.items() if k in ("epcList", "quantityList") and v is not None})
    if step:
        event["bizStep"] = step
    if disposition:
        event["disposition"] = disposition
    event.update({k: v for k, v in fields.items() if k not in ("epcList", "quantityList") and v is not None})
    return event


# --- lots ----------------------------------------------------------------------------------------------


def lot_receipt(m: Mapper, lot: Any, e: Any, quantity_dict: dict[str, str] | None = None) -> dict[str, Any]:
    """The ObjectEvent ADD of a lot received from a supplier (or its corrective twin)."""
    ilmd = {
        "cbvmda:lotNumber": lot.lot_number,
        "cbvmda:itemExpirationDate": lot.expires_on.isoformat(),
        "lotline:kind": str(lot.kind),
        "lotline:material": lot.material,
        "lotline:manufacturedOn": lot.manufactured_on.isoformat(),
    }
    for key, value in (
        ("lotline:retestOn", _iso(lot.retest_on)),
        ("lotline:supplier", lot.supplier),
        ("lotline:supplierLot", lot.supplier_lot),
    ):
        if value is not None:
            ilmd[key] = value
    q = quantity_dict or lot.received.as_dict()
    return _object(
        e,
        "ADD",
        "receiving",
        QUARANTINED,
        quantityList=[quantity(ids.lgtin(lot.gtin, lot.lot_number, m.prefix), q)],
        **m.place(e.location_id),  # where it was received (the lot may have moved since)
        ilmd=ilmd,
    )


def _lot_received(m: Mapper, s: Step) -> list[dict[str, Any]]:
    e = s.first
    if e.produced_by_batch_id is not None:
        return []  # part of its formulation's TransformationEvent
    return [lot_receipt(m, m.lot(e.originator_id), e)]


def _lot_decision(step_word: str, disposition: str) -> Callable[[Mapper, Step], list[dict[str, Any]]]:
    def handle(m: Mapper, s: Step) -> list[dict[str, Any]]:
        e = s.first
        # where the lot was when QA decided (it may have been transferred since; in transit: the
        # place it left)
        then: Any = m.ledger.repository.get(e.originator_id, version=e.originator_version)
        extra = {"lotline:resultsRef": e.results_ref} if getattr(e, "results_ref", None) else {}
        return [
            _object(
                e,
                "OBSERVE",
                step_word,
                disposition,
                quantityList=[{"epcClass": m.lgtin(e.originator_id)}],
                **m.place(then.location_id),
                **_reason(e),
                **extra,
            )
        ]

    return handle


def _transfer_shipped(m: Mapper, s: Step) -> list[dict[str, Any]]:
    """What remained of a lot leaving one place for another, under its transfer number."""
    e = s.first
    return [
        _object(
            e,
            "OBSERVE",
            "shipping",
            "in_transit",
            quantityList=[quantity(m.lgtin(e.originator_id), e.quantity)],
            readPoint={"id": m.sgln(e.from_id)},
            sourceList=[{"type": "location", "source": m.sgln(e.from_id)}],
            destinationList=[{"type": "location", "destination": m.sgln(e.to_id)}],
            **{"lotline:transferNumber": e.transfer_number},
        )
    ]


def _transfer_received(m: Mapper, s: Step) -> list[dict[str, Any]]:
    """A transferred lot received where it was sent: in progress, or damaged (with the remarks)."""
    e = s.first
    return [
        _object(
            e,
            "OBSERVE",
            "receiving",
            "in_progress" if e.intact else "damaged",
            quantityList=[{"epcClass": m.lgtin(e.originator_id)}],
            **m.place(e.location_id),
            **_reason(e),
        )
    ]


def _quantity_corrected(m: Mapper, s: Step) -> list[dict[str, Any]]:
    """The original receipt declared wrong (same eventID), and the corrective receipt."""
    e = s.first
    lot = m.lot(e.originator_id)
    received = lot_created_event(m, lot.id)
    (link,) = m.ledger.chain.links_for([(lot.id, 1)])
    source = Source(link.seq, str(link.stream), link.version, link.chain_hash, link.seq)
    (original,) = m.map(Step("Lot.Received", (received,), source))
    corrective = lot_receipt(m, lot, received, e.quantity)
    corrective["recordTime"] = _record_time(e)
    corrective["lotline:corrects"] = original["eventID"]
    corrective["lotline:correctsVersion"] = e.corrects_version
    corrective = m.complete(corrective, s)
    declared = dict(original)
    declared["recordTime"] = _record_time(e)
    declared["errorDeclaration"] = {
        "declarationTime": e.audit["occurred_at"].replace("+00:00", "Z"),
        "reason": "incorrect_data",
        "correctiveEventIDs": [corrective["eventID"]],
        **_reason(e),
    }
    return [declared, corrective]


def lot_created_event(m: Mapper, lot_id: UUID) -> Any:
    """The `Lot.Received` event itself (its time and record time)."""
    return next(iter(m.ledger.events.get(lot_id, lte=1)))


# --- formulation and packaging -------------------------------------------------------------------------


def _formulated(m: Mapper, s: Step) -> list[dict[str, Any]]:
    e = s.first
    out = m.lot(e.output_lot_id)
    inputs = [quantity(m.lgtin(UUID(str(i["lot_id"]))), i["quantity"]) for i in e.inputs]
    ilmd = {
        "cbvmda:lotNumber": out.lot_number,
        "cbvmda:itemExpirationDate": out.expires_on.isoformat(),
        "lotline:kind": str(out.kind),
        "lotline:material": out.material,
        "lotline:manufacturedOn": out.manufactured_on.isoformat(),
    }
    if out.retest_on is not None:
        ilmd["lotline:retestOn"] = out.retest_on.isoformat()
    event = {
        "type": "TransformationEvent",
        **_when(e),
        "inputQuantityList": inputs,
        "outputQuantityList": [quantity(ids.lgtin(out.gtin, out.lot_number, m.prefix), e.actual_yield)],
        "transformationID": BATCH_ID + e.batch_number,
        "bizStep": "creating_class_instance",
        "disposition": QUARANTINED,
        **m.place(e.location_id),
        "ilmd": ilmd,
        "lotline:batchNumber": e.batch_number,
        "lotline:product": e.product,
        "lotline:theoreticalYield": e.theoretical_yield,
        "lotline:yieldPercent": str(e.yield_percent),
        "lotline:equipment": list(e.equipment),
        "lotline:performedBy": e.performed_by,
        "lotline:checkedBy": e.checked_by,
    }
    if all(str(i["kind"]) != "api" for i in e.inputs):
        event["lotline:placebo"] = True
    if e.yield_limits is not None:
        event["lotline:yieldLimits"] = e.yield_limits
    if e.deviation is not None:
        event["lotline:yieldDeviation"] = e.deviation
    return [event]


def _deviation(m: Mapper, s: Step) -> list[dict[str, Any]]:
    e = s.first
    batch: Any = m.ledger.repository.get(e.originator_id, version=1)
    return [
        _object(
            e,
            "OBSERVE",
            RECORDING_DEVIATION,
            None,
            quantityList=[{"epcClass": m.lgtin(batch.output_lot_id)}],
            **m.place(batch.location_id),
            **{
                "lotline:batchNumber": batch.batch_number,
                "lotline:deviation": {
                    "number": e.number,
                    "description": e.description,
                    "classification": e.classification,
                },
            },
        )
    ]


def _packaged(m: Mapper, s: Step) -> list[dict[str, Any]]:
    e = s.first
    trial = m.trial(e.trial_id)
    m.trials_seen.add(e.trial_id)
    kits = sorted(e.kit_numbers)
    event: dict[str, Any] = {
        "type": "TransformationEvent",
        **_when(e),
        "inputQuantityList": [quantity(m.lgtin(UUID(str(i["lot_id"]))), i["quantity"]) for i in e.inputs],
        "outputEPCList": [m.kit_sgtin(e.kit_gtin, n) for n in kits],
        "transformationID": PACKAGING_ID + e.batch_number,
        "bizStep": "commissioning",
        "disposition": "in_progress",
        **m.place(e.location_id),
        "ilmd": {
            "cbvmda:lotNumber": e.batch_number,
            "cbvmda:itemExpirationDate": e.expires_on.isoformat(),
            "lotline:labelVersion": e.label_version,
        },
        "lotline:batchNumber": e.batch_number,
        "lotline:trial": TRIAL_ID + trial.code,
        "lotline:samples": e.samples,
        "lotline:rejects": e.rejects,
        "lotline:performedBy": e.performed_by,
        "lotline:checkedBy": e.checked_by,
    }
    if not m.blinded:
        event["lotline:arms"] = [
            {
                "treatment": a["treatment"],
                "lot": m.lgtin(UUID(str(a["dp_lot_id"]))),
                "unitsPerKit": a["units_per_kit"],
                "unitsIssued": a["units_issued"],
                "samples": a["samples"],
                "rejects": a["rejects"],
            }
            for a in e.arms
        ]
        event["lotline:allocation"] = [{"kit": n, "treatment": e.allocation[n]} for n in e.kit_numbers]
    return [event]


def _run_step(
    step_word: str | None, disposition: Callable[[Any], str | None], extra: Callable[[Any], dict[str, Any]]
) -> Callable[[Mapper, Step], list[dict[str, Any]]]:
    def handle(m: Mapper, s: Step) -> list[dict[str, Any]]:
        e = s.first
        run = m.run(e.originator_id)
        return [
            _object(
                e,
                "OBSERVE",
                step_word,
                disposition(e),
                quantityList=[{"epcClass": m.run_class(run)}],
                **m.place(run.location_id),
                **{"lotline:batchNumber": run.batch_number},
                **_reason(e),
                **extra(e),
            )
        ]

    return handle


# --- distribution --------------------------------------------------------------------------------------


def shipment_transaction(m: Mapper, shipment: Any) -> list[dict[str, str]]:
    gln = m.location(shipment.from_id).gln
    return [{"type": "desadv", "bizTransaction": f"urn:epcglobal:cbv:bt:{gln}:{shipment.shipment_number}"}]


def _shipped(m: Mapper, s: Step) -> list[dict[str, Any]]:
    e = s.first
    shipment = m.shipment(e.originator_id)
    kits = [m.kit_sgtin(_kit_gtin(m, k), n) for k, n in zip(e.kit_ids, e.kit_numbers, strict=True)]
    sscc = m.sscc(e.sscc)
    transaction = shipment_transaction(m, shipment)
    packing = {
        "type": "AggregationEvent",
        **_when(e),
        "parentID": sscc,
        "childEPCs": kits,
        "action": "ADD",
        "bizStep": "packing",
        "disposition": "container_closed",
        **m.place(e.from_id),
        "bizTransactionList": transaction,
        "lotline:shipmentNumber": e.shipment_number,
    }
    details = {
        "lotline:shipmentNumber": e.shipment_number,
        "lotline:transitRange": {"minCelsius": _number(e.min_celsius), "maxCelsius": _number(e.max_celsius)},
    }
    if e.logger_id:
        details["lotline:logger"] = e.logger_id
    if e.carrier:
        details["lotline:carrier"] = e.carrier
    shipping = _object(
        e,
        "OBSERVE",
        "shipping",
        "in_transit",
        epcList=[sscc],
        readPoint={"id": m.sgln(e.from_id)},
        bizTransactionList=transaction,
        sourceList=[{"type": "location", "source": m.sgln(e.from_id)}],
        destinationList=[{"type": "location", "destination": m.sgln(e.to_id)}],
        **details,
    )
    return [packing, shipping]


def _kit_gtin(m: Mapper, kit_id: Any) -> str:
    return str(m.kit(UUID(str(kit_id))).gtin)


def temperature(low: Any, high: Any, **metadata: Any) -> list[dict[str, Any]]:
    """A sensorElementList with one temperature report (°C) of the lowest and highest reading."""
    report: dict[str, Any] = {"type": "Temperature", "uom": "CEL"}
    if low is not None:
        report["minValue"] = _number(low)
    if high is not None:
        report["maxValue"] = _number(high)
    element: dict[str, Any] = {"sensorReport": [report]}
    if metadata:
        element["sensorMetadata"] = metadata
    return [element]


def _receipt(m: Mapper, s: Step) -> list[dict[str, Any]]:
    """An ObjectEvent per outcome: received (in progress, or quarantined: excursion), damaged, missing."""
    e = s.first
    shipment = m.shipment(e.originator_id)
    gtins = dict(zip(shipment.kit_numbers, shipment.kit_ids, strict=True))
    received = QUARANTINED if e.excursion else "in_progress"
    groups = (("received", received), ("damaged", "damaged"), ("missing", MISSING))
    sensors = (
        temperature(e.logger_min, e.logger_max)
        if e.logger_min is not None or e.logger_max is not None
        else None
    )
    found = []
    for outcome, disposition in groups:
        numbers = sorted(n for n, o in e.outcomes.items() if o == outcome)
        if not numbers:
            continue
        extra = {
            "lotline:shipmentNumber": shipment.shipment_number,
            "lotline:outcome": outcome,
            "lotline:excursion": bool(e.excursion),
        }
        found.append(
            _object(
                e,
                "OBSERVE",
                "receiving",
                disposition,
                epcList=[m.kit_sgtin(_kit_gtin(m, gtins[n]), n) for n in numbers],
                **m.place(shipment.to_id),
                bizTransactionList=shipment_transaction(m, shipment),
                sensorElementList=sensors,
                **extra,
            )
        )
    return found


def _kits(m: Mapper, s: Step) -> list[str]:
    return sorted(m.sgtin(e.originator_id) for e in s.events)


def _quarantined(m: Mapper, s: Step) -> list[dict[str, Any]]:
    e = s.first
    x = e.excursion
    return [
        _object(
            e,
            "OBSERVE",
            "holding",
            QUARANTINED,
            epcList=_kits(m, s),
            **m.place(UUID(str(x["location_id"]))),
            sensorElementList=temperature(x["min_celsius"], x["max_celsius"]),
            **{"lotline:durationMinutes": x["duration_minutes"]},
        )
    ]


def _quarantine_decided(released: bool) -> Callable[[Mapper, Step], list[dict[str, Any]]]:
    def handle(m: Mapper, s: Step) -> list[dict[str, Any]]:
        e = s.first
        return [
            _object(
                e,
                "OBSERVE",
                "inspecting",
                "conformant" if released else "non_conformant",
                epcList=_kits(m, s),
                **_reason(e),
            )
        ]

    return handle


def _dispensed(m: Mapper, s: Step) -> list[dict[str, Any]]:
    e = s.first
    return [
        _object(
            e,
            "OBSERVE",
            "dispensing",
            "dispensed",
            epcList=[m.sgtin(e.originator_id)],
            **m.place(e.site_id),
            **{"lotline:subject": e.subject},
        )
    ]


def _returned(m: Mapper, s: Step) -> list[dict[str, Any]]:
    e = s.first
    return [
        _object(
            e,
            "OBSERVE",
            "receiving",
            "returned",
            epcList=[m.sgtin(e.originator_id)],
            **m.place(e.site_id),
            **{"lotline:condition": e.condition},
        )
    ]


def _recall_quarantined(m: Mapper, s: Step) -> list[dict[str, Any]]:
    """Kits a place quarantines under a recall (one report of one place: one place, one recall)."""
    e = s.first
    return [
        _object(
            e,
            "OBSERVE",
            "holding",
            QUARANTINED,
            epcList=_kits(m, s),
            **m.place(e.place_id),
            **{"lotline:recall": e.recall_number},
        )
    ]


def _return_shipped(m: Mapper, s: Step) -> list[dict[str, Any]]:
    """Kits a site sends back to a depot, under a recall or as a routine return: one shipping event per
    site, depot and recall (`lotline:recall` only under a recall)."""
    groups: dict[tuple[UUID, UUID, str | None], list[Any]] = {}
    for e in s.events:
        groups.setdefault((e.site_id, e.depot_id, e.recall_number), []).append(e)
    found = []
    for (site_id, depot_id, recall_number), events in groups.items():
        site = m.sgln(site_id)
        found.append(
            _object(
                events[0],
                "OBSERVE",
                "shipping",
                "in_transit",
                epcList=sorted(m.sgtin(e.originator_id) for e in events),
                readPoint={"id": site},
                sourceList=[{"type": "location", "source": site}],
                destinationList=[{"type": "location", "destination": m.sgln(depot_id)}],
                **({"lotline:recall": recall_number} if recall_number else {}),
                **_reason(events[0]),
            )
        )
    return found


def _return_received(m: Mapper, s: Step) -> list[dict[str, Any]]:
    """Kits sent back (under a recall, or as a routine return), received at the depot."""
    e = s.first
    recall = _recall_sent_back_under(m, e)
    return [
        _object(
            e,
            "OBSERVE",
            "receiving",
            "returned",
            epcList=_kits(m, s),
            **m.place(e.depot_id),
            **({"lotline:recall": recall} if recall else {}),
        )
    ]


def _recall_sent_back_under(m: Mapper, received: Any) -> str | None:
    """The recall number of the `Kit.ReturnShipped` just before a kit's `Kit.ReturnReceived`.

    A kit on its way back takes no other step, so that event is the one before; one receipt is one
    recall's step, so the first kit's answer holds for all its kits (one read per step).
    """
    before = received.originator_version - 1
    for e in m.ledger.events.get(received.originator_id, gt=before - 1, lte=before):
        return getattr(e, "recall_number", None)
    return None


def _destruction_authorised(m: Mapper, s: Step) -> list[dict[str, Any]]:
    e = s.first
    return [
        _object(e, "OBSERVE", AUTHORISING_DESTRUCTION, PENDING_DESTRUCTION, epcList=_kits(m, s), **_reason(e))
    ]


def _destroyed(m: Mapper, s: Step) -> list[dict[str, Any]]:
    """Kits destroyed, one event per place that destroyed them (and certificate): the place is the
    readPoint/bizLocation, which capture hands back to the ledger as the place holding the kits."""
    groups: dict[tuple[UUID | None, str, str], list[Any]] = {}
    for e in s.events:
        groups.setdefault((_destroyed_at(m, e), e.certificate, e.method), []).append(e)
    return [
        _object(
            events[0],
            "DELETE",
            "destroying",
            "destroyed",
            epcList=sorted(m.sgtin(e.originator_id) for e in events),
            **m.place(place),
            **{"lotline:certificate": certificate, "lotline:method": method},
        )
        for (place, certificate, method), events in groups.items()
    ]


def _destroyed_at(m: Mapper, e: Any) -> UUID | None:
    """The place that destroyed a kit: named by the event since `Kit.Destroyed` version 2; in an
    event recorded before, the place that held the kit then (the kit as that event left it says)."""
    if e.location_id is not None:
        return UUID(str(e.location_id))
    kit: Any = m.ledger.repository.get(e.originator_id, version=e.originator_version)
    return kit.destroyed_at_id


_HANDLERS: dict[str, Callable[[Mapper, Step], list[dict[str, Any]]]] = {
    "Lot.Received": _lot_received,
    "Lot.Released": _lot_decision("inspecting", "conformant"),
    "Lot.Rejected": _lot_decision("inspecting", "non_conformant"),
    "Lot.PutOnHold": _lot_decision("holding", ON_HOLD),
    "Lot.Recalled": _lot_decision("holding", "recalled"),
    "Lot.QuantityCorrected": _quantity_corrected,
    "Lot.TransferShipped": _transfer_shipped,
    "Lot.TransferReceived": _transfer_received,
    "ManufacturingBatch.Formulated": _formulated,
    "ManufacturingBatch.DeviationRecorded": _deviation,
    "PackagingRun.Packaged": _packaged,
    "PackagingRun.Disposed": _run_step(
        "inspecting",
        lambda e: "conformant" if e.disposition == "released" else "non_conformant",
        lambda e: {},
    ),
    "PackagingRun.Certified": _run_step(QP_CERTIFYING, lambda e: QP_CERTIFIED, lambda e: {}),
    "PackagingRun.SponsorReleased": _run_step(
        SPONSOR_RELEASING, lambda e: SPONSOR_RELEASED, lambda e: {"lotline:country": e.country}
    ),
    "PackagingRun.Recalled": _run_step(
        "holding", lambda e: "recalled", lambda e: {"lotline:recall": e.recall_number}
    ),
    "PackagingRun.ExpiryExtended": _run_step(
        RELABELLING, lambda e: None, lambda e: {"lotline:newExpiry": e.new_expiry.isoformat()}
    ),
    "Shipment.Shipped": _shipped,
    "Shipment.ReceiptConfirmed": _receipt,
    "Kit.Quarantined": _quarantined,
    "Kit.QuarantineReleased": _quarantine_decided(True),
    "Kit.QuarantineRejected": _quarantine_decided(False),
    "Kit.Dispensed": _dispensed,
    "Kit.Returned": _returned,
    "Kit.RecallQuarantined": _recall_quarantined,
    "Kit.ReturnShipped": _return_shipped,
    "Kit.ReturnReceived": _return_received,
    "Kit.DestructionAuthorised": _destruction_authorised,
    "Kit.Destroyed": _destroyed,
}
MAPPED = set(_HANDLERS)


def steps(rows: Iterator[tuple[Any, Any]]) -> Iterator[Step]:
    """Group (chain row, decoded event) pairs in chain order into steps; per-kit steps become one."""
    pending: list[tuple[Any, Any]] = []

    def flush() -> Iterator[Step]:
        if pending:
            row = pending[0][0]
            kind = event_type(row.topic)
            yield Step(
                kind,
                tuple(e for _, e in pending),
                Source(
                    row.seq, row.originator_id, row.originator_version, row.chain_hash, pending[-1][0].seq
                ),
            )
            pending.clear()

    for row, event in rows:
        kind = event_type(row.topic)
        if kind in COMPLETING:
            continue
        if pending and not (kind in PER_KIT and _same_step(pending[0], row, event)):
            yield from flush()
        pending.append((row, event))
    yield from flush()


def _same_step(first: tuple[Any, Any], row: Any, event: Any) -> bool:
    row0, e0 = first
    return (
        row0.topic == row.topic
        and e0.audit["occurred_at"] == event.audit["occurred_at"]
        and e0.audit["principal"] == event.audit["principal"]
    )


def master_data(m: Mapper) -> list[dict[str, Any]]:
    """The EPCIS master data of every location and trial an export named."""
    vocab = []
    places = []
    for location_id in sorted(m.locations_seen, key=str):
        loc = m.ledger.get(Location, location_id)
        created = m.location(location_id)
        attributes = [
            {"id": "urn:epcglobal:cbv:mda#name", "attribute": loc.name},
            {"id": "urn:epcglobal:cbv:mda#countryCode", "attribute": loc.country},
            {"id": ext("locationKind"), "attribute": str(loc.kind)},
            {"id": ext("registeredAt"), "attribute": created.last_occurred_at},
        ]
        if loc.address:
            attributes.append({"id": "urn:epcglobal:cbv:mda#streetAddressOne", "attribute": loc.address})
        if loc.site_number:
            attributes.append({"id": ext("siteNumber"), "attribute": loc.site_number})
        if loc.trial_id is not None:
            m.trials_seen.add(loc.trial_id)
            attributes.append({"id": ext("trial"), "attribute": TRIAL_ID + m.trial(loc.trial_id).code})
        if loc.activated_at:
            attributes.append({"id": ext("activatedAt"), "attribute": loc.activated_at})
        attributes.append({"id": ext("status"), "attribute": str(loc.status)})
        places.append({"id": m.sgln(location_id), "attributes": attributes})
    if places:
        vocab.append({"type": "urn:epcglobal:epcis:vtype:BusinessLocation", "vocabularyElementList": places})
    trials = []
    for trial_id in sorted(m.trials_seen, key=str):
        t = m.ledger.get(Trial, trial_id)
        trials.append(
            {
                "id": TRIAL_ID + t.code,
                "attributes": [
                    {"id": ext("title"), "attribute": t.title},
                    {"id": ext("sponsor"), "attribute": t.sponsor},
                    {"id": ext("countries"), "attribute": " ".join(t.countries)},
                    {"id": ext("doNotShipDays"), "attribute": t.do_not_ship_days},
                    {"id": ext("doNotDispenseDays"), "attribute": t.do_not_dispense_days},
                    {"id": ext("registeredAt"), "attribute": m.trial(trial_id).last_occurred_at},
                ],
            }
        )
    if trials:
        vocab.append({"type": ext("Trial"), "vocabularyElementList": trials})
    return vocab
