"""The stored shape of every event, pinned: a stored event never changes shape.

Every event class of every aggregate is declared in `ledger/domain/` (a nested class with typed
attributes and a docstring, named in the `@event(...)` decorator of the method that applies it). This
file discovers them all by walking each aggregate's nested `Event` subclasses and compares each with
the table below: its topic (what the store records), its `class_version`, and its attributes with their
annotated types. The library stores exactly these attributes (plus `timestamp`, `originator_topic` for a
created event, and `class_version` when above 1), and the hash chain covers them.

To change an event's shape: raise its `class_version`, add a staticmethod
`upcast_vN_vN+1(state)` that turns a stored state of version N into the new shape, pin the new shape
here and keep the old one in `EARLIER`. A new event needs its line in `SHAPES`.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Iterator, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from eventsourcing.domain import CanInitAggregate, CommandMethodDecorator, decorated_func_callers
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from ledger.application import Ledger
from ledger.domain import Kit, KitStatus, Location, Lot, ManufacturingBatch, PackagingRun, Shipment, Trial
from ledger.domain.account import UserAccount
from ledger.domain.base import LedgerAggregate, stamp
from ledger.domain.recall import Recall
from ledger.domain.shipment import ShipmentStatus
from ledger.values import Meaning, sign
from ledger.verify import verify_chain
from tests.builders import KIT_GTIN, actors, sscc

AGGREGATES: tuple[type[LedgerAggregate], ...] = (
    Trial,
    Location,
    Lot,
    ManufacturingBatch,
    PackagingRun,
    Kit,
    Shipment,
    Recall,
    UserAccount,
)

LIBRARY_FIELDS = frozenset({"originator_id", "originator_version", "timestamp", "originator_topic"})
"""What the library adds to every event (`originator_topic`: created events only); not pinned here."""

SHAPES: dict[str, tuple[int, str]] = {
    # Trial
    "ledger.domain.trial:Trial.ExpiryWindowsChanged": (
        1,
        "audit: dict[str, Any]; dns_days: int; dnd_days: int",
    ),
    "ledger.domain.trial:Trial.Registered": (
        1,
        "code: str; audit: dict[str, Any]; title: str; sponsor: str; countries: list[str]; "
        "do_not_ship_days: int; do_not_dispense_days: int",
    ),
    # Location
    "ledger.domain.location:Location.Activated": (1, "audit: dict[str, Any]"),
    "ledger.domain.location:Location.ClosedOut": (
        1,
        "audit: dict[str, Any]; signature: dict[str, str]; delivered: int",
    ),
    "ledger.domain.location:Location.Deactivated": (1, "audit: dict[str, Any]"),
    "ledger.domain.location:Location.Registered": (
        1,
        "gln: str; audit: dict[str, Any]; kind: str; name: str; country: str; trial_id: UUID | None; "
        "site_number: str | None; address: str",
    ),
    "ledger.domain.location:Location.SiteKeyRegistered": (
        1,
        "audit: dict[str, Any]; public_key: str; key_id: str",
    ),
    # Lot
    "ledger.domain.lot:Lot.Consumed": (
        1,
        "audit: dict[str, Any]; quantity: dict[str, str]; by_step_id: UUID; step: str",
    ),
    "ledger.domain.lot:Lot.PutOnHold": (1, "audit: dict[str, Any]"),
    "ledger.domain.lot:Lot.QuantityCorrected": (
        1,
        "audit: dict[str, Any]; corrects_version: int; quantity: dict[str, str]",
    ),
    "ledger.domain.lot:Lot.Recalled": (
        2,
        "audit: dict[str, Any]; signature: dict[str, str]; recall_number: str | None",
    ),
    "ledger.domain.lot:Lot.Received": (
        1,
        "gtin: str; lot_number: str; audit: dict[str, Any]; kind: str; material: str; "
        "quantity: dict[str, str]; location_id: UUID; manufactured_on: date; expires_on: date; "
        "retest_on: date | None; supplier: str | None; supplier_lot: str | None; "
        "produced_by_batch_id: UUID | None",
    ),
    "ledger.domain.lot:Lot.Rejected": (
        1,
        "audit: dict[str, Any]; signature: dict[str, str]; results_ref: str | None",
    ),
    "ledger.domain.lot:Lot.TransferReceived": (1, "audit: dict[str, Any]; location_id: UUID; intact: bool"),
    "ledger.domain.lot:Lot.TransferShipped": (
        1,
        "audit: dict[str, Any]; transfer_number: str; from_id: UUID; to_id: UUID; quantity: dict[str, str]",
    ),
    "ledger.domain.lot:Lot.Released": (
        1,
        "audit: dict[str, Any]; signature: dict[str, str]; results_ref: str",
    ),
    # ManufacturingBatch
    "ledger.domain.batch:ManufacturingBatch.DeviationRecorded": (
        1,
        "audit: dict[str, Any]; number: str; description: str; classification: str",
    ),
    "ledger.domain.batch:ManufacturingBatch.Formulated": (
        2,
        "batch_number: str; audit: dict[str, Any]; product: str; location_id: UUID; "
        "inputs: list[dict[str, Any]]; output_lot_id: UUID; theoretical_yield: dict[str, str]; "
        "actual_yield: dict[str, str]; yield_percent: str; equipment: list[str]; "
        "performed_by: dict[str, str]; checked_by: dict[str, str]; "
        "yield_limits: dict[str, str] | None; deviation: dict[str, str] | None",
    ),
    # PackagingRun
    "ledger.domain.packaging:PackagingRun.Certified": (1, "audit: dict[str, Any]; signature: dict[str, str]"),
    "ledger.domain.packaging:PackagingRun.Disposed": (
        1,
        "audit: dict[str, Any]; signature: dict[str, str]; disposition: str",
    ),
    "ledger.domain.packaging:PackagingRun.ExpiryExtended": (
        1,
        "audit: dict[str, Any]; signature: dict[str, str]; batch_number: str; new_expiry: date",
    ),
    "ledger.domain.packaging:PackagingRun.Recalled": (
        1,
        "audit: dict[str, Any]; signature: dict[str, str]; recall_number: str",
    ),
    "ledger.domain.packaging:PackagingRun.Packaged": (
        1,
        "batch_number: str; audit: dict[str, Any]; trial_id: UUID; location_id: UUID; kit_gtin: str; "
        "label_version: str; expires_on: date; inputs: list[dict[str, Any]]; arms: list[dict[str, Any]]; "
        "samples: int; rejects: int; kit_numbers: list[str]; allocation: dict[str, str]; "
        "performed_by: dict[str, str]; checked_by: dict[str, str]",
    ),
    "ledger.domain.packaging:PackagingRun.SponsorReleased": (
        1,
        "audit: dict[str, Any]; signature: dict[str, str]; country: str",
    ),
    # Kit
    "ledger.domain.kit:Kit.Commissioned": (
        1,
        "gtin: str; kit_number: str; audit: dict[str, Any]; trial_id: UUID; packaging_run_id: UUID; "
        "batch_number: str; label_version: str; expires_on: date; location_id: UUID",
    ),
    "ledger.domain.kit:Kit.Destroyed": (
        2,
        "audit: dict[str, Any]; certificate: str; method: str; location_id: UUID | None",
    ),
    "ledger.domain.kit:Kit.DestructionAuthorised": (1, "audit: dict[str, Any]; signature: dict[str, str]"),
    "ledger.domain.kit:Kit.Dispensed": (1, "audit: dict[str, Any]; site_id: UUID; subject: str"),
    "ledger.domain.kit:Kit.QuarantineRejected": (1, "audit: dict[str, Any]; signature: dict[str, str]"),
    "ledger.domain.kit:Kit.QuarantineReleased": (1, "audit: dict[str, Any]; signature: dict[str, str]"),
    "ledger.domain.kit:Kit.Quarantined": (1, "audit: dict[str, Any]; excursion: dict[str, Any]"),
    "ledger.domain.kit:Kit.RecallQuarantined": (
        1,
        "audit: dict[str, Any]; place_id: UUID; recall_number: str",
    ),
    "ledger.domain.kit:Kit.Received": (
        2,
        "audit: dict[str, Any]; shipment_id: UUID; site_id: UUID; outcome: str; quarantine: bool; "
        "into_stock: bool",
    ),
    "ledger.domain.kit:Kit.Relabelled": (1, "audit: dict[str, Any]; batch_number: str; new_expiry: date"),
    "ledger.domain.kit:Kit.ReturnReceived": (1, "audit: dict[str, Any]; depot_id: UUID"),
    "ledger.domain.kit:Kit.ReturnShipped": (
        2,
        "audit: dict[str, Any]; site_id: UUID; depot_id: UUID; recall_number: str | None",
    ),
    "ledger.domain.kit:Kit.Returned": (1, "audit: dict[str, Any]; site_id: UUID; condition: str"),
    "ledger.domain.kit:Kit.Shipped": (
        1,
        "audit: dict[str, Any]; shipment_id: UUID; from_id: UUID; to_id: UUID",
    ),
    # Shipment
    "ledger.domain.shipment:Shipment.ReceiptConfirmed": (
        3,
        "audit: dict[str, Any]; outcomes: dict[str, str]; logger_min: Decimal | None; "
        "logger_max: Decimal | None; excursion: bool; site_signature: dict[str, str] | None; "
        "remarks: dict[str, str]",
    ),
    "ledger.domain.shipment:Shipment.Shipped": (
        1,
        "shipment_number: str; audit: dict[str, Any]; sscc: str; from_id: UUID; to_id: UUID; "
        "kit_ids: list[UUID]; kit_numbers: list[str]; min_celsius: Decimal; max_celsius: Decimal; "
        "logger_id: str | None; carrier: str | None",
    ),
    # Recall
    "ledger.domain.recall:Recall.Acknowledged": (1, "audit: dict[str, Any]; place_id: str"),
    "ledger.domain.recall:Recall.Closed": (1, "audit: dict[str, Any]; signature: dict[str, str]"),
    "ledger.domain.recall:Recall.KitDestroyed": (
        2,
        "audit: dict[str, Any]; place_id: UUID; kit_id: UUID; certificate: str; method: str",
    ),
    "ledger.domain.recall:Recall.KitJustified": (
        1,
        "audit: dict[str, Any]; signature: dict[str, str]; kit_id: UUID; justification: str",
    ),
    "ledger.domain.recall:Recall.KitReported": (
        1,
        "audit: dict[str, Any]; kit_id: UUID; outcome: str; subject: str | None",
    ),
    "ledger.domain.recall:Recall.Opened": (
        3,
        "recall_number: str; audit: dict[str, Any]; signature: dict[str, str]; "
        "lots: list[dict[str, str]]; suspect_runs: list[dict[str, str]]; classification: str; scope: str; "
        "runs: list[dict[str, str]]; places: dict[str, dict[str, str]]; kit_groups: list[dict[str, Any]]; "
        "shipments_in_transit: list[dict[str, Any]]; source: dict[str, Any]; exercise: bool",
    ),
    "ledger.domain.recall:Recall.ReturnReceived": (1, "audit: dict[str, Any]; depot_id: UUID; kit_id: UUID"),
    "ledger.domain.account:UserAccount.Registered": (
        1,
        "principal: str; audit: dict[str, Any]; name: str; role: str; places: list[str]; password_set: bool",
    ),
    "ledger.domain.account:UserAccount.RoleChanged": (
        1, "audit: dict[str, Any]; previous: str; role: str; places: list[str]"
    ),
    "ledger.domain.account:UserAccount.Bound": (1, "audit: dict[str, Any]; places: list[str]"),
    "ledger.domain.account:UserAccount.Unbound": (1, "audit: dict[str, Any]; places: list[str]"),
    "ledger.domain.account:UserAccount.Disabled": (1, "audit: dict[str, Any]"),
    "ledger.domain.account:UserAccount.Enabled": (1, "audit: dict[str, Any]"),
    "ledger.domain.account:UserAccount.PasswordSet": (1, "audit: dict[str, Any]"),
    "ledger.domain.account:UserAccount.TokenIssued": (
        1, "audit: dict[str, Any]; token_id: str; label: str; expires_at: str | None"
    ),
    "ledger.domain.account:UserAccount.TokensRevoked": (1, "audit: dict[str, Any]; token_ids: list[str]"),
    "ledger.domain.account:UserAccount.UnblindedRead": (1, "audit: dict[str, Any]; what: str; request: str"),
}
"""topic -> (class_version, "attribute: annotated type; ..."), in declaration order."""

EARLIER: dict[tuple[str, int], str] = {
    ("ledger.domain.shipment:Shipment.ReceiptConfirmed", 2): (
        "audit: dict[str, Any]; outcomes: dict[str, str]; logger_min: Decimal | None; "
        "logger_max: Decimal | None; excursion: bool; site_signature: dict[str, str] | None"
    ),
    ("ledger.domain.kit:Kit.Received", 1): (
        "audit: dict[str, Any]; shipment_id: UUID; site_id: UUID; outcome: str; quarantine: bool"
    ),
    ("ledger.domain.recall:Recall.Opened", 1): (
        "recall_number: str; audit: dict[str, Any]; signature: dict[str, str]; "
        "lots: list[dict[str, str]]; classification: str; scope: str; runs: list[dict[str, str]]; "
        "places: dict[str, dict[str, str]]; kit_groups: list[dict[str, Any]]; "
        "shipments_in_transit: list[dict[str, Any]]; source: dict[str, Any]"
    ),
    ("ledger.domain.recall:Recall.Opened", 2): (
        "recall_number: str; audit: dict[str, Any]; signature: dict[str, str]; "
        "lots: list[dict[str, str]]; suspect_runs: list[dict[str, str]]; classification: str; scope: str; "
        "runs: list[dict[str, str]]; places: dict[str, dict[str, str]]; kit_groups: list[dict[str, Any]]; "
        "shipments_in_transit: list[dict[str, Any]]; source: dict[str, Any]"
    ),
    ("ledger.domain.kit:Kit.ReturnShipped", 1): (
        "audit: dict[str, Any]; site_id: UUID; depot_id: UUID; recall_number: str"
    ),
    ("ledger.domain.lot:Lot.Recalled", 1): "audit: dict[str, Any]; signature: dict[str, str]",
    ("ledger.domain.recall:Recall.KitDestroyed", 1): (
        "audit: dict[str, Any]; depot_id: UUID; kit_id: UUID; certificate: str; method: str"
    ),
    ("ledger.domain.batch:ManufacturingBatch.Formulated", 1): (
        "batch_number: str; audit: dict[str, Any]; product: str; location_id: UUID; "
        "inputs: list[dict[str, Any]]; output_lot_id: UUID; theoretical_yield: dict[str, str]; "
        "actual_yield: dict[str, str]; yield_percent: str; equipment: list[str]; "
        "performed_by: dict[str, str]; checked_by: dict[str, str]"
    ),
    ("ledger.domain.kit:Kit.Destroyed", 1): "audit: dict[str, Any]; certificate: str; method: str",
    ("ledger.domain.shipment:Shipment.ReceiptConfirmed", 1): (
        "audit: dict[str, Any]; outcomes: dict[str, str]; logger_min: Decimal | None; "
        "logger_max: Decimal | None; excursion: bool"
    ),
}
"""(topic, older class_version) -> the shape events of that version were stored with."""


def parse(shape: str) -> dict[str, str]:
    """`"audit: dict[str, Any]; step: str"` -> {"audit": "dict[str, Any]", "step": "str"}."""
    pairs = (part.split(": ", 1) for part in shape.split("; "))
    return {name: annotation for name, annotation in pairs}


def annotation_text(annotation: Any) -> str:
    # The domain modules use `from __future__ import annotations`: annotations are their source text.
    return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)


def attributes(event_class: type) -> dict[str, str]:
    """The event's own attributes (what a stored state holds besides the library's keys)."""
    return {
        f.name: annotation_text(f.type)
        for f in dataclasses.fields(event_class)
        if f.name not in LIBRARY_FIELDS
    }


def stored_event_classes() -> Iterator[tuple[type[LedgerAggregate], type]]:
    """Every event class nested in an aggregate, except its base `Event` and the library's unused
    default `Created` (each aggregate declares its own created event)."""
    for aggregate in AGGREGATES:
        for name in dir(aggregate):
            value = getattr(aggregate, name)
            if (
                isinstance(value, type)
                and issubclass(value, aggregate.Event)
                and value not in (aggregate.Event, aggregate.Created)
            ):
                yield aggregate, value


EVENTS = {get_topic(cls): (aggregate, cls) for aggregate, cls in stored_event_classes()}


def class_version(event_class: type) -> int:
    return int(getattr(event_class, "class_version", 1))


def decorator_of(aggregate: type[LedgerAggregate], event_class: type) -> CommandMethodDecorator:
    """The `@event(...)` decorator whose method applies `event_class`."""
    if issubclass(event_class, CanInitAggregate):
        init = aggregate.__dict__["__init__"]
        assert isinstance(init, CommandMethodDecorator), f"{aggregate.__name__}.__init__ has no @event"
        return init
    (found,) = [d for d, cls in decorated_func_callers.items() if cls is event_class]
    return found


# --- every event is pinned -------------------------------------------------------------------------------


def test_the_table_names_every_event_of_every_aggregate() -> None:
    found, pinned = set(EVENTS), set(SHAPES)
    assert not found - pinned, f"events without a pinned shape (add them to SHAPES): {sorted(found - pinned)}"
    assert not pinned - found, (
        f"pinned events that no longer exist (stored ones must stay readable): {sorted(pinned - found)}"
    )


def test_each_aggregate_records_its_own_created_event() -> None:
    for aggregate in AGGREGATES:
        created = [cls for a, cls in EVENTS.values() if a is aggregate and issubclass(cls, CanInitAggregate)]
        assert len(created) == 1, f"{aggregate.__name__} has created events {created}"


@pytest.mark.parametrize("topic", sorted(SHAPES))
def test_each_event_keeps_its_stored_shape(topic: str) -> None:
    if topic not in EVENTS:
        pytest.fail(f"{topic} is pinned but no aggregate declares it")
    _, event_class = EVENTS[topic]
    pinned_version, pinned_shape = SHAPES[topic]
    version = class_version(event_class)
    assert version >= pinned_version, f"{topic}: class_version went down from {pinned_version} to {version}"
    if version > pinned_version:
        pytest.fail(
            f"{topic} is now class_version {version}: pin its new shape in SHAPES and keep the shape of "
            f"version {pinned_version} in EARLIER"
        )
    assert attributes(event_class) == parse(pinned_shape), (
        f"{topic} changed shape at class_version {version}: a new shape needs class_version "
        f"{version + 1} and an upcast_v{version}_v{version + 1}"
    )


@pytest.mark.parametrize("topic", sorted(SHAPES))
def test_each_event_is_declared_with_a_docstring_and_matches_its_method(topic: str) -> None:
    """The method's parameters are the event's attributes, with the same types: the decorator passes
    them by name, so one that differs would be dropped or be missing when the event is applied."""
    aggregate, event_class = EVENTS[topic]
    decorator = decorator_of(aggregate, event_class)
    declared = decorator.given_event_cls
    assert declared is not None, f"{topic} is generated from a method signature; declare it as a class"
    assert issubclass(event_class, declared)
    doc = declared.__doc__ or ""
    # A dataclass without a docstring gets its signature as one.
    assert doc and not doc.startswith(f"{declared.__name__}("), f"{topic} needs a docstring"
    params = list(inspect.signature(decorator.decorated_func).parameters.values())[1:]
    assert {p.name: annotation_text(p.annotation) for p in params} == attributes(event_class)


# --- older versions are upcast ---------------------------------------------------------------------------


@pytest.mark.parametrize("topic", sorted(t for t, (v, _) in SHAPES.items() if v > 1))
def test_every_older_version_upcasts_to_the_current_shape(topic: str) -> None:
    _, event_class = EVENTS[topic]
    current, shape = SHAPES[topic]
    for old in range(1, current):
        assert (topic, old) in EARLIER, f"keep the shape of {topic} version {old} in EARLIER"
        state: dict[str, Any] = {name: f"<{name}>" for name in parse(EARLIER[topic, old])}
        for v in range(old, current):
            upcast = getattr(event_class, f"upcast_v{v}_v{v + 1}", None)
            assert upcast is not None, f"{topic} has no upcast_v{v}_v{v + 1}"
            upcast(state)
        assert set(state) == set(parse(shape)), f"{topic} v{old} upcast gives {sorted(state)}"
        kept = set(map(str, state.values()))
        assert all(f"<{name}>" in kept for name in parse(EARLIER[topic, old])), (
            "upcast lost or changed a value (it may keep it under a new name)"
        )


def test_a_destruction_recorded_before_it_named_its_place_upcasts_with_no_place() -> None:
    state = {"audit": {"occurred_at": "x"}, "certificate": "DC-1", "method": "incineration"}
    Kit.Destroyed.upcast_v1_v2(state)
    assert state == {
        "audit": {"occurred_at": "x"},
        "certificate": "DC-1",
        "method": "incineration",
        "location_id": None,
    }


def test_a_receipt_recorded_before_site_signatures_upcasts_with_no_signature() -> None:
    state: dict[str, Any] = {
        "audit": {},
        "outcomes": {},
        "logger_min": None,
        "logger_max": None,
        "excursion": False,
    }
    Shipment.ReceiptConfirmed.upcast_v1_v2(state)
    assert state["site_signature"] is None
    Shipment.ReceiptConfirmed.upcast_v2_v3(state)
    assert state["remarks"] == {}  # a receipt recorded before remarks existed has none
    assert set(state) == set(parse(SHAPES["ledger.domain.shipment:Shipment.ReceiptConfirmed"][1]))


def test_a_batch_recorded_before_yield_checks_upcasts_with_no_limits_and_no_deviation() -> None:
    state: dict[str, Any] = {name: f"<{name}>" for name in parse(
        EARLIER["ledger.domain.batch:ManufacturingBatch.Formulated", 1]
    )}
    ManufacturingBatch.Formulated.upcast_v1_v2(state)
    assert state["yield_limits"] is None and state["deviation"] is None
    assert set(state) == set(parse(SHAPES["ledger.domain.batch:ManufacturingBatch.Formulated"][1]))


def test_a_lot_recalled_before_campaigns_were_named_upcasts_with_no_recall_number() -> None:
    state: dict[str, Any] = {"audit": {}, "signature": {}}
    Lot.Recalled.upcast_v1_v2(state)
    assert state == {"audit": {}, "signature": {}, "recall_number": None}


def test_a_recall_destruction_recorded_by_a_depot_upcasts_with_the_depot_as_its_place() -> None:
    state: dict[str, Any] = {"audit": {}, "depot_id": "D", "kit_id": "K", "certificate": "C", "method": "m"}
    Recall.KitDestroyed.upcast_v1_v2(state)
    assert state == {"audit": {}, "place_id": "D", "kit_id": "K", "certificate": "C", "method": "m"}
    assert set(state) == set(parse(SHAPES["ledger.domain.recall:Recall.KitDestroyed"][1]))


# --- a version 1 event, stored as it was, replays ------------------------------------------------------


def as_version_1(ledger: Ledger, event: Any, *dropped: str) -> StoredEvent:
    """`event` stored as version 1 stored it: no `class_version` key and no `dropped` attributes."""
    stored = ledger.mapper.to_stored_event(event)
    state = ledger.mapper.transcoder.decode(stored.state)
    assert state.pop("class_version") >= 2
    for name in dropped:
        del state[name]
    return StoredEvent(
        stored.originator_id, stored.originator_version, stored.topic, ledger.mapper.transcoder.encode(state)
    )


def store(ledger: Ledger, events: Sequence[Any], old: StoredEvent) -> None:
    """The aggregate's events as they are, the last one as `old`; the chain covers them all."""
    *current, _ = events
    ledger.recorder.insert_events([*(ledger.mapper.to_stored_event(e) for e in current), old])
    report = verify_chain(ledger.chain)
    assert report.ok and report.count == len(events), report.describe()


def test_a_version_1_destruction_in_the_store_replays(ledger: Ledger) -> None:
    depot = Location.create_id("depot-gln")
    kit = Kit(
        gtin=KIT_GTIN,
        kit_number="K1",
        audit=stamp(actors.admin),
        trial_id=Trial.create_id("T"),
        packaging_run_id=PackagingRun.create_id("P"),
        batch_number="P",
        label_version="v1",
        expires_on=date(2030, 1, 1),
        location_id=depot,
    )
    kit.authorise_destruction(stamp(actors.qa), sign(actors.qa, Meaning.AUTHORISED_DESTRUCTION).as_dict())
    kit.destroy(stamp(actors.depot), depot, "DC-1", "incineration")
    events = kit.collect_events()
    old = as_version_1(ledger, events[-1], "location_id")
    assert "location_id" not in json.loads(old.state)
    store(ledger, events, old)

    replayed = ledger.get(Kit, kit.id)
    assert replayed.status == KitStatus.DESTROYED
    assert replayed.destroyed_at_id == depot  # the kit's place when it was destroyed
    destroyed = list(ledger.events.get(kit.id))[-1]
    assert isinstance(destroyed, Kit.Destroyed)
    assert destroyed.location_id is None
    assert destroyed.certificate == "DC-1"


def test_a_version_1_receipt_in_the_store_replays(ledger: Ledger) -> None:
    shipment = Shipment(
        shipment_number="S1",
        audit=stamp(actors.depot),
        sscc=sscc(1),
        from_id=Location.create_id("depot-gln"),
        to_id=Location.create_id("site-gln"),
        kit_ids=[Kit.create_id(KIT_GTIN, "K1")],
        kit_numbers=["K1"],
        min_celsius=Decimal("2"),
        max_celsius=Decimal("8"),
        logger_id=None,
        carrier=None,
    )
    shipment.confirm_receipt(stamp(actors.site), {"K1": "received"}, Decimal("3.5"), None, False)
    events = shipment.collect_events()
    old = as_version_1(ledger, events[-1], "site_signature", "remarks")
    store(ledger, events, old)

    replayed = ledger.get(Shipment, shipment.id)
    assert replayed.status == ShipmentStatus.RECEIVED
    assert replayed.site_signature is None
    receipt = list(ledger.events.get(shipment.id))[-1]
    assert isinstance(receipt, Shipment.ReceiptConfirmed)
    assert receipt.site_signature is None and receipt.remarks == {}
    assert receipt.logger_min == Decimal("3.5")


def test_a_version_1_batch_in_the_store_replays(ledger: Ledger) -> None:
    batch = ManufacturingBatch(
        batch_number="B-OLD",
        audit=stamp(actors.mfg),
        product="Lotlinib 10 mg",
        location_id=Location.create_id("plant-gln"),
        inputs=[],
        output_lot_id=Lot.create_id("gtin", "DP-OLD"),
        theoretical_yield={"amount": "100", "unit": "unit"},
        actual_yield={"amount": "98", "unit": "unit"},
        yield_percent="98.00",
        equipment=["MIX-1"],
        performed_by=actors.mfg.as_dict(),
        checked_by=actors.mfg2.as_dict(),
        yield_limits={"low_percent": "95", "high_percent": "100"},
        deviation=None,
    )
    events = batch.collect_events()
    old = as_version_1(ledger, events[-1], "yield_limits", "deviation")
    store(ledger, [*events[:-1], events[-1]], old)

    replayed = ledger.get(ManufacturingBatch, batch.id)
    assert replayed.yield_limits is None and replayed.deviations == []
    assert replayed.yield_percent == Decimal("98.00")
