"""Test-data builders: the people of a supply chain and a small clinical program built step by step.

`Program` drives the public `Ledger` commands in the order a real program happens (the same
sequence as the smoke run): a trial and its locations, released API and excipient lots, a
formulation, a placebo lot, blinded kits in two arms, and the three-step release. Each stage is a
method, so a test can stop where its rule bites; `Program.released(ledger)` runs them all.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from ledger.application import Ledger
from ledger.commands import (
    ActivateSite,
    Arm,
    CertifyPackaging,
    ConfirmReceipt,
    DisposePackaging,
    Formulate,
    OpenRecall,
    OutputLot,
    Package,
    ReceiveLot,
    ReceiveLotTransfer,
    RegisterLocation,
    RegisterTrial,
    ReleaseLot,
    Ship,
    SponsorRelease,
    TransferLot,
)
from ledger.domain import Kit, Lot, Shipment
from ledger.gs1 import with_check_digit
from ledger.values import Actor, Meaning, Quantity, Role, now, sign


class Actors:
    """One person per role, plus a second QA and manufacturing user for four-eyes checks."""

    admin: Actor = Actor("admin1", Role.ADMIN, "Ada Admin")
    mfg: Actor = Actor("mfg1", Role.MANUFACTURING, "Max Maker")
    mfg2: Actor = Actor("mfg2", Role.MANUFACTURING, "Mia Checker")
    qa: Actor = Actor("qa1", Role.QA, "Quinn QA")
    qa2: Actor = Actor("qa2", Role.QA, "Quentin Second")
    qp: Actor = Actor("qp1", Role.QP, "Pat QP")
    depot: Actor = Actor("depot1", Role.DEPOT, "Dee Depot")
    site: Actor = Actor("site1", Role.SITE, "Sam Site")
    inspector: Actor = Actor("insp1", Role.INSPECTOR, "Ines Inspector")


actors = Actors

BY_ADMIN: dict[str, Any] = {"by": Actors.admin, "reason": "test set-up"}
"""Who changes access in a test's set-up, and why (`Identity`'s `by` and `reason`)."""

# GS1 keys of the program's trade items and places (check digits computed, never typed).
API_GTIN = with_check_digit("0400000000010")
EXCIPIENT_GTIN = with_check_digit("0400000000020")
DP_GTIN = with_check_digit("0400000000030")
KIT_GTIN = with_check_digit("0400000000040")
PLACEBO_GTIN = with_check_digit("0400000000050")
PLANT_GLN = with_check_digit("400000000001")
DEPOT_GLN = with_check_digit("400000000002")
SITE_GLN = with_check_digit("400000000003")
PENDING_SITE_GLN = with_check_digit("400000000004")
FR_SITE_GLN = with_check_digit("400000000005")


def sscc(serial: int) -> str:
    """A valid SSCC-18 for shipper number `serial`."""
    return with_check_digit(f"340000000{serial:08d}")


def q(text: str) -> Quantity:
    """`q("500 g")` -> Quantity(Decimal("500"), "g")."""
    amount, unit = text.split()
    return Quantity.of(amount, unit)


def transfer_lot(
    ledger: Ledger,
    lot: UUID,
    to: UUID,
    *,
    number: str = "TR-1",
    clock: Any = None,
    sender: Actor = actors.mfg,
    receiver: Actor = actors.depot,
) -> int:
    """Send `lot` from where it is to `to` (by `sender`), received there intact (by `receiver`):
    the events written (none if it is there already)."""
    held = ledger.peek(Lot, lot)
    if held.location_id == to and held.in_transit_to is None:
        return 0
    when = clock or (lambda: None)
    ledger.handle(
        TransferLot(
            lot_id=lot, transfer_number=number, from_id=held.location_id, to_id=to, occurred_at=when()
        ),
        sender,
    )
    ledger.handle(ReceiveLotTransfer(lot_id=lot, location_id=to, occurred_at=when()), receiver)
    return 2


def today() -> date:
    return now().date()


@contextmanager
def writes_nothing(ledger: Ledger, error: type[BaseException], match: str | None = None) -> Iterator[Any]:
    """Expect `error` from the block, and that the store holds exactly what it held before."""
    head = ledger.chain.head()
    count = ledger.chain.count_events()
    with pytest.raises(error, match=match) as info:
        yield info
    assert ledger.chain.head() == head, "a refused step extended the chain"
    assert ledger.chain.count_events() == count, "a refused step stored events"


class Clock:
    """Event times for a program: `None` (the ledger's now) or consecutive minutes from `start`."""

    def __init__(self, start: datetime | None) -> None:
        self.start = start
        self.steps = 0

    def __call__(self) -> datetime | None:
        if self.start is None:
            return None
        self.steps += 1
        return self.start + timedelta(minutes=self.steps)


class Program:
    """A small blinded trial, LTL-101 in DE and FR, built through the ledger's public commands."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        start: datetime | None = None,
        do_not_ship_days: int = 30,
        do_not_dispense_days: int = 7,
        dp_expires_on: date | None = None,
    ) -> None:
        self.ledger = ledger
        self.clock = Clock(start)
        if start is not None and ledger.late_reason is None:
            ledger.late_reason = "test program: a history dated in the past, entered at once"
        self.today = start.date() if start else today()  # lots are made before it, expire after it
        self.do_not_ship_days = do_not_ship_days
        self.do_not_dispense_days = do_not_dispense_days
        self.dp_expires_on = dp_expires_on or self.today + timedelta(days=365)
        self.kit_numbers: list[str] = []
        self.allocation: dict[str, str] = {}
        self.shipments: dict[str, UUID] = {}

    @classmethod
    def released(
        cls, ledger: Ledger, *, active_kits: int = 6, placebo_kits: int = 4, **options: Any
    ) -> Program:
        """Everything up to kits released for DE: ready to ship."""
        program = cls(ledger, **options)
        program.reference()
        program.materials()
        program.formulate()
        program.placebo()
        program.package(active_kits=active_kits, placebo_kits=placebo_kits)
        program.release_run()
        return program

    # --- reference data --------------------------------------------------------------------------

    def reference(self) -> Program:
        """The trial, a plant, a depot, an activated DE site, a registered-only DE site, a FR site."""
        L, admin = self.ledger, actors.admin
        self.trial = L.handle(
            RegisterTrial(
                code="LTL-101",
                title="Lotlinib 10 mg vs placebo",
                sponsor="Acme Pharma",
                countries=["DE", "FR"],
                do_not_ship_days=self.do_not_ship_days,
                do_not_dispense_days=self.do_not_dispense_days,
                occurred_at=self.clock(),
            ),
            admin,
        ).id
        self.plant = L.handle(
            RegisterLocation(
                gln=PLANT_GLN,
                kind="manufacturing_site",
                name="Plant",
                country="DE",
                occurred_at=self.clock(),
            ),
            admin,
        ).id
        self.depot = L.handle(
            RegisterLocation(
                gln=DEPOT_GLN,
                kind="depot",
                name="Depot",
                country="DE",
                occurred_at=self.clock(),
            ),
            admin,
        ).id
        self.site = self._site(SITE_GLN, "Site 101", "DE", "101", activate=True)
        self.pending_site = self._site(PENDING_SITE_GLN, "Site 102", "DE", "102", activate=False)
        self.fr_site = self._site(FR_SITE_GLN, "Site 201", "FR", "201", activate=True)
        return self

    def _site(self, gln: str, name: str, country: str, number: str, activate: bool) -> UUID:
        site = self.ledger.handle(
            RegisterLocation(
                gln=gln,
                kind="clinical_site",
                name=name,
                country=country,
                trial_id=self.trial,
                site_number=number,
                occurred_at=self.clock(),
            ),
            actors.admin,
        ).id
        if activate:
            self.ledger.handle(ActivateSite(site_id=site, occurred_at=self.clock()), actors.admin)
        return site

    # --- lots ----------------------------------------------------------------------------------------

    def receive(
        self,
        *,
        gtin: str,
        lot_number: str,
        kind: str,
        quantity: str,
        expires_on: date | None = None,
        release: bool = True,
        material: str = "material",
        supplier: str = "Supplier GmbH",
        manufactured_on: date | None = None,
    ) -> UUID:
        """A supplier's lot received at the plant, released by QA unless `release=False`."""
        lot = self.ledger.handle(
            ReceiveLot(
                gtin=gtin,
                lot_number=lot_number,
                kind=kind,
                material=material,
                quantity=q(quantity),
                location_id=self.plant,
                manufactured_on=manufactured_on or self.today - timedelta(days=400),
                expires_on=expires_on or self.today + timedelta(days=730),
                supplier=supplier,
                occurred_at=self.clock(),
            ),
            actors.mfg,
        ).id
        if release:
            self.release(lot)
        return lot

    def release(self, lot: UUID) -> None:
        self.ledger.handle(
            ReleaseLot(
                lot_id=lot,
                signature=sign(actors.qa, Meaning.RELEASED),
                results_ref=f"COA-{lot.hex[:6]}",
                occurred_at=self.clock(),
            ),
            actors.qa,
        )

    def materials(self) -> Program:
        """API lot of 2 kg and excipient lot of 10 kg, both released."""
        self.api = self.receive(
            gtin=API_GTIN,
            lot_number="API-1",
            kind="api",
            quantity="2 kg",
            material="lotlinib",
            supplier="ChemCo",
        )
        self.excipient = self.receive(
            gtin=EXCIPIENT_GTIN,
            lot_number="EXC-1",
            kind="excipient",
            quantity="10 kg",
            material="lactose",
            supplier="ExCo",
            expires_on=self.today + timedelta(days=1000),
        )
        return self

    def formulate(
        self,
        *,
        api: str = "500 g",
        excipient: str = "2 kg",
        yield_units: int = 980,
        theoretical_units: int = 1000,
        release: bool = True,
    ) -> Program:
        """Batch B-1: API + excipient into drug-product lot DP-1 (980 of 1000 tablets)."""
        self.batch, self.dp = self.ledger.handle(
            Formulate(
                batch_number="B-1",
                product="Lotlinib 10 mg",
                location_id=self.plant,
                inputs=[(self.api, q(api)), (self.excipient, q(excipient))],
                output=OutputLot(DP_GTIN, "DP-1", "Lotlinib 10 mg tablets", self.dp_expires_on),
                theoretical_yield=Quantity.of(theoretical_units, "unit"),
                actual_yield=Quantity.of(yield_units, "unit"),
                equipment=["MIX-1", "PRESS-2"],
                checked_by=actors.mfg2,
                occurred_at=self.clock(),
            ),
            actors.mfg,
        ).created
        if release:
            self.release(self.dp)
        return self

    def formulate_batch(
        self,
        inputs: list[tuple[UUID, str]],
        *,
        batch_number: str = "B-2",
        lot_number: str = "DP-2",
        occurred_at: datetime | None = None,
    ) -> tuple[UUID, UUID]:
        """Another batch from `inputs` [(lot, "500 g"), ...]: (batch id, drug-product lot id)."""
        return self.ledger.handle(
            Formulate(
                batch_number=batch_number,
                product="Lotlinib 10 mg",
                location_id=self.plant,
                inputs=[(lot, q(amount)) for lot, amount in inputs],
                output=OutputLot(DP_GTIN, lot_number, "Lotlinib 10 mg tablets", self.dp_expires_on),
                theoretical_yield=Quantity.of(100, "unit"),
                actual_yield=Quantity.of(97, "unit"),
                equipment=["MIX-1"],
                checked_by=actors.mfg2,
                occurred_at=occurred_at or self.clock(),
            ),
            actors.mfg,
        ).created

    def placebo(self) -> Program:
        """A placebo drug-product lot of 1000 tablets bought in from a supplier, released."""
        self.placebo_lot = self.receive(
            gtin=PLACEBO_GTIN,
            lot_number="PLC-1",
            kind="drug_product",
            quantity="1000 unit",
            material="placebo tablets",
            supplier="PlaceboCo",
            expires_on=self.today + timedelta(days=500),
        )
        return self

    def transfer(self, lot: UUID, to: UUID, number: str = "TR-1") -> None:
        """Send `lot` from wherever it is to `to`, received there intact (nothing if it is there)."""
        transfer_lot(self.ledger, lot, to, number=number, clock=self.clock)

    # --- kits ----------------------------------------------------------------------------------------

    def package(
        self,
        *,
        active_kits: int = 6,
        placebo_kits: int = 4,
        units_per_kit: int = 10,
        batch_number: str = "P-1",
        kit_prefix: str = "K",
    ) -> Program:
        """Blinded kits K00001... (or `kit_prefix`00001...): active kits first, then placebo; every
        unit issued is a kit unit."""
        kit_list = [(f"{kit_prefix}{i:05d}", "A") for i in range(1, active_kits + 1)]
        kit_list += [
            (f"{kit_prefix}{i:05d}", "P") for i in range(active_kits + 1, active_kits + placebo_kits + 1)
        ]
        arms = [Arm("A", self.dp, units_per_kit, active_kits * units_per_kit)]
        if placebo_kits:
            arms.append(Arm("P", self.placebo_lot, units_per_kit, placebo_kits * units_per_kit))
        for arm in arms:
            self.transfer(arm.dp_lot_id, self.depot)
        self.run = self.ledger.handle(
            Package(
                batch_number=batch_number,
                trial_id=self.trial,
                location_id=self.depot,
                kit_gtin=KIT_GTIN,
                label_version="v1",
                arms=arms,
                kit_list=kit_list,
                checked_by=actors.mfg2,
                occurred_at=self.clock(),
            ),
            actors.mfg,
        ).id
        self.kit_numbers += [n for n, _ in kit_list]
        self.allocation.update(dict(kit_list))
        return self

    def release_run(
        self, *, qa: bool = True, qp: bool = True, countries: tuple[str, ...] = ("DE",)
    ) -> Program:
        """QA disposition, QP certification and sponsor release for `countries`, as far as asked."""
        L = self.ledger
        if qa:
            L.handle(
                DisposePackaging(
                    run_id=self.run,
                    signature=sign(actors.qa, Meaning.RELEASED),
                    released=True,
                    occurred_at=self.clock(),
                ),
                actors.qa,
            )
        if qa and qp:
            L.handle(
                CertifyPackaging(
                    run_id=self.run,
                    signature=sign(actors.qp, Meaning.CERTIFIED),
                    occurred_at=self.clock(),
                ),
                actors.qp,
            )
            for country in countries:
                L.handle(
                    SponsorRelease(
                        run_id=self.run,
                        country=country,
                        signature=sign(actors.qa, Meaning.SPONSOR_RELEASED),
                        occurred_at=self.clock(),
                    ),
                    actors.qa,
                )
        return self

    def open_recall(self, number: str = "RC-1", *, lots: tuple[UUID, ...] = ()) -> UUID:
        """QA opens recall `number` of `lots` (default: the API lot), class II, every kit (signed)."""
        written = self.ledger.handle(
            OpenRecall(
                recall_number=number,
                lot_ids=list(lots or (self.api,)),
                reason="impurity",
                classification="class_ii",
                scope="all_kits",
                signature=sign(actors.qa, Meaning.APPROVED),
            ),
            actors.qa,
        )
        recall_id: UUID = written.id
        return recall_id

    def kit(self, number: str) -> UUID:
        return Kit.create_id(KIT_GTIN, number)

    def kits(self, *numbers: str) -> list[UUID]:
        return [self.kit(n) for n in numbers]

    # --- distribution --------------------------------------------------------------------------------

    def ship(
        self,
        numbers: list[str],
        *,
        shipment_number: str = "S-1",
        to: UUID | None = None,
        serial: int = 1,
        occurred_at: datetime | None = None,
    ) -> UUID:
        """Ship kits `numbers` from the depot (2-8 °C) to the activated DE site unless `to` says."""
        shipment = self.ledger.handle(
            Ship(
                shipment_number=shipment_number,
                sscc=sscc(serial),
                from_id=self.depot,
                to_id=to or self.site,
                kit_ids=self.kits(*numbers),
                min_celsius=Decimal(2),
                max_celsius=Decimal(8),
                logger_id="LOG-1",
                carrier="ColdChain",
                occurred_at=occurred_at or self.clock(),
            ),
            actors.depot,
        ).id
        self.shipments[shipment_number] = shipment
        return shipment

    def receive_all(
        self,
        shipment: UUID,
        numbers: list[str],
        *,
        logger_max: str = "7",
        occurred_at: datetime | None = None,
    ) -> Any:
        """The site receives every kit intact; the logger peaked at `logger_max` °C."""
        return self.ledger.handle(
            ConfirmReceipt(
                shipment_id=shipment,
                site_id=self.ledger.get(Shipment, shipment).to_id,
                outcomes=dict.fromkeys(numbers, "received"),
                logger_min=Decimal("3"),
                logger_max=Decimal(logger_max),
                occurred_at=occurred_at or self.clock(),
            ),
            actors.site,
        )

    def at_site(self, numbers: list[str], **ship_options: Any) -> UUID:
        """Ship `numbers` and receive them intact at the DE site; the shipment id."""
        shipment = self.ship(numbers, **ship_options)
        self.receive_all(shipment, numbers)
        return shipment
