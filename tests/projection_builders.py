"""A hand-built program with known answers for the read-model tests, through the Ledger's commands.

Trial LTL-201 (DE, FR). Two API lots (API-A 2 kg, API-B 1 kg) go into one batch, B-AB, so every
active kit of packaging run P-1 is made from two API lots. API-C (5 kg) is split across four
batches B-C1..B-C4, each packaged into its own run P-2..P-5. Placebo PLC-1 fills the placebo arm of
every run; cartons CTN-1 are a component of P-1 only. Kits alternate active (odd) and placebo (even).

Where the 24 kits of P-1 end up:
  K1001            Site 101, dispensed to SUBJ-001
  K1002            Site 101, dispensed to SUBJ-002, returned unused, destroyed (certificate DC-1)
  K1003..K1006     Site 101, received
  K1007            Site 101, damaged on receipt
  K1008            missing from shipment SH-1 (Site 101)
  K1009..K1012     in transit to Site 102 (SH-2, still open)
  K1013            Site 201, quarantined by a transport excursion (SH-3)
  K1014            Site 201, excursion, then released from quarantine by QA: received
  K1015..K1024     at the depot, available
The 4 kits of P-2 (K2001..K2004) are received at Site 101 (SH-4); P-3..P-5 stay at the depot.
Then API-A's received quantity is corrected to 2.5 kg, and API-B is recalled.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from uuid import UUID

from sqlalchemy import select

from ledger.application import Ledger
from ledger.commands import (
    ActivateSite,
    Arm,
    AuthoriseDestruction,
    CertifyPackaging,
    ConfirmReceipt,
    CorrectLotQuantity,
    DecideQuarantine,
    DestroyKits,
    Dispense,
    DisposePackaging,
    Formulate,
    OutputLot,
    Package,
    RecallLot,
    ReceiveLot,
    RegisterLocation,
    RegisterTrial,
    ReleaseLot,
    ReturnKit,
    Ship,
    SponsorRelease,
)
from ledger.domain import Kit
from ledger.gs1 import with_check_digit
from ledger.values import Actor, Meaning, Quantity, Role, now, sign
from projections.db import open_engine
from projections.runner import ProjectionRunner
from tests.builders import transfer_lot

ADMIN = Actor("admin1", Role.ADMIN, "Ada Admin")
MFG = Actor("mfg1", Role.MANUFACTURING, "Max Maker")
MFG2 = Actor("mfg2", Role.MANUFACTURING, "Mia Checker")
QA = Actor("qa1", Role.QA, "Quinn QA")
QP = Actor("qp1", Role.QP, "Pat QP")
DEPOT = Actor("depot1", Role.DEPOT, "Dee Depot")
SITE = Actor("site1", Role.SITE, "Sam Site")

KIT_GTIN = with_check_digit("0400000000090")


def gtin(n: int) -> str:
    return with_check_digit(f"04000000001{n:02d}")


def gln(n: int) -> str:
    return with_check_digit(f"4000000001{n:02d}")


def q(text: str) -> Quantity:
    """`q("300 g")` -> Quantity(Decimal("300"), "g")."""
    amount, unit = text.split()
    return Quantity.of(amount, unit)


@dataclass
class Scenario:
    """The ids of everything the scenario made, by name; `kit("K1001")` is a kit's id."""

    today: date
    trial: UUID | None = None
    places: dict[str, UUID] = field(default_factory=dict)
    lots: dict[str, UUID] = field(default_factory=dict)
    batches: dict[str, UUID] = field(default_factory=dict)
    runs: dict[str, UUID] = field(default_factory=dict)
    shipments: dict[str, UUID] = field(default_factory=dict)

    @staticmethod
    def kit(number: str) -> UUID:
        return Kit.create_id(KIT_GTIN, number)

    def kits(self, *numbers: str) -> list[UUID]:
        return [self.kit(n) for n in numbers]


def kit_numbers(first: int, count: int) -> list[str]:
    return [f"K{n}" for n in range(first, first + count)]


def build_scenario(ledger: Ledger) -> Scenario:
    """Run the whole scenario of this module's docstring; the ids it made."""
    s = Scenario(today=now().date())
    _reference(ledger, s)
    _materials(ledger, s)
    _formulations(ledger, s)
    _packaging(ledger, s)
    _distribution(ledger, s)
    ledger.handle(
        CorrectLotQuantity(
            lot_id=s.lots["API-A"],
            corrects_version=1,
            quantity=q("2.5 kg"),
            reason="the certificate of analysis states 2.5 kg",
        ),
        QA,
    )
    ledger.handle(
        RecallLot(
            lot_id=s.lots["API-B"],
            signature=sign(QA, Meaning.APPROVED),
            reason="supplier notified an impurity above specification",
        ),
        QA,
    )
    return s


def _reference(ledger: Ledger, s: Scenario) -> None:
    s.trial = ledger.handle(
        RegisterTrial(
            code="LTL-201",
            title="Lotlinib vs placebo",
            sponsor="Acme",
            countries=["DE", "FR"],
            do_not_ship_days=30,
            do_not_dispense_days=7,
        ),
        ADMIN,
    ).id
    s.places["Plant"] = ledger.handle(
        RegisterLocation(
            gln=gln(1),
            kind="manufacturing_site",
            name="Plant",
            country="DE",
        ),
        ADMIN,
    ).id
    s.places["Depot"] = ledger.handle(
        RegisterLocation(
            gln=gln(2),
            kind="depot",
            name="Depot",
            country="DE",
        ),
        ADMIN,
    ).id
    for number, country, n in ((101, "DE", 11), (102, "DE", 12), (201, "FR", 13)):
        site = ledger.handle(
            RegisterLocation(
                gln=gln(n),
                kind="clinical_site",
                name=f"Site {number}",
                country=country,
                trial_id=s.trial,
                site_number=str(number),
            ),
            ADMIN,
        ).id
        ledger.handle(ActivateSite(site_id=site), ADMIN)
        s.places[f"Site {number}"] = site


def _receive(ledger: Ledger, s: Scenario, number: str, kind: str, quantity: str, days: int, n: int) -> None:
    lot = ledger.handle(
        ReceiveLot(
            gtin=gtin(n),
            lot_number=number,
            kind=kind,
            material=f"{number} material",
            quantity=q(quantity),
            location_id=s.places["Plant"],
            manufactured_on=s.today - timedelta(days=100),
            expires_on=s.today + timedelta(days=days),
            supplier="Supplier GmbH",
        ),
        MFG,
    ).id
    ledger.handle(
        ReleaseLot(lot_id=lot, signature=sign(QA, Meaning.RELEASED), results_ref=f"COA-{number}"), QA
    )
    s.lots[number] = lot


def _materials(ledger: Ledger, s: Scenario) -> None:
    _receive(ledger, s, "API-A", "api", "2 kg", 700, 1)
    _receive(ledger, s, "API-B", "api", "1 kg", 700, 2)
    _receive(ledger, s, "API-C", "api", "5 kg", 700, 3)
    _receive(ledger, s, "EXC-1", "excipient", "50 kg", 900, 4)
    _receive(ledger, s, "CTN-1", "packaging_component", "1000 unit", 600, 5)
    _receive(ledger, s, "PLC-1", "drug_product", "2000 unit", 500, 6)


def _formulate(
    ledger: Ledger,
    s: Scenario,
    number: str,
    inputs: list[tuple[str, str]],
    output: str,
    units: int,
    days: int,
    n: int,
) -> None:
    batch, dp = ledger.handle(
        Formulate(
            batch_number=number,
            product="Lotlinib 10 mg",
            location_id=s.places["Plant"],
            inputs=[(s.lots[lot], q(amount)) for lot, amount in inputs],
            output=OutputLot(gtin(n), output, "Lotlinib 10 mg tablets", s.today + timedelta(days=days)),
            theoretical_yield=Quantity.of(units, "unit"),
            actual_yield=Quantity.of(units, "unit"),
            equipment=["MIX-1"],
            checked_by=MFG2,
        ),
        MFG,
    ).created
    ledger.handle(ReleaseLot(lot_id=dp, signature=sign(QA, Meaning.RELEASED), results_ref=f"QC-{output}"), QA)
    s.batches[number] = batch
    s.lots[output] = dp


def _formulations(ledger: Ledger, s: Scenario) -> None:
    # A kit made from two API lots: B-AB consumes API-A and API-B.
    _formulate(
        ledger, s, "B-AB", [("API-A", "300 g"), ("API-B", "200 g"), ("EXC-1", "1 kg")], "DP-AB", 1000, 400, 10
    )
    # One API lot split across many batches: API-C into B-C1..B-C4.
    for i in range(1, 5):
        _formulate(
            ledger,
            s,
            f"B-C{i}",
            [("API-C", "400 g"), ("EXC-1", "500 g")],
            f"DP-C{i}",
            200,
            200 if i == 1 else 300,
            10 + i,
        )


def _package(
    ledger: Ledger,
    s: Scenario,
    number: str,
    dp: str,
    first: int,
    per_arm: int,
    components: list[tuple[str, str]],
    countries: tuple[str, ...],
) -> None:
    numbers = kit_numbers(first, 2 * per_arm)
    kit_list = [(n, "A" if i % 2 == 0 else "P") for i, n in enumerate(numbers)]
    for lot in (dp, "PLC-1", *(name for name, _ in components)):  # packaged at the depot
        transfer_lot(ledger, s.lots[lot], s.places["Depot"], number=f"TR-{number}", sender=MFG,
                     receiver=DEPOT)
    run = ledger.handle(
        Package(
            batch_number=number,
            trial_id=s.trial,
            location_id=s.places["Depot"],
            kit_gtin=KIT_GTIN,
            label_version="v1",
            kit_list=kit_list,
            checked_by=MFG2,
            arms=[Arm("A", s.lots[dp], 10, 10 * per_arm), Arm("P", s.lots["PLC-1"], 10, 10 * per_arm)],
            components=[(s.lots[lot], q(amount)) for lot, amount in components],
        ),
        MFG,
    ).id
    ledger.handle(DisposePackaging(run_id=run, signature=sign(QA, Meaning.RELEASED), released=True), QA)
    ledger.handle(CertifyPackaging(run_id=run, signature=sign(QP, Meaning.CERTIFIED)), QP)
    for country in countries:
        ledger.handle(
            SponsorRelease(run_id=run, country=country, signature=sign(QA, Meaning.SPONSOR_RELEASED)), QA
        )
    s.runs[number] = run


def _packaging(ledger: Ledger, s: Scenario) -> None:
    _package(ledger, s, "P-1", "DP-AB", 1001, 12, [("CTN-1", "24 unit")], ("DE", "FR"))
    for i in range(1, 5):
        _package(ledger, s, f"P-{i + 1}", f"DP-C{i}", 1000 * (i + 1) + 1, 2, [], ("DE",))


def _ship(ledger: Ledger, s: Scenario, number: str, to: UUID, kits: list[str], serial: int) -> UUID:
    shipment = ledger.handle(
        Ship(
            shipment_number=number,
            sscc=with_check_digit(f"34000000{serial:09d}"),
            from_id=s.places["Depot"],
            to_id=to,
            kit_ids=s.kits(*kits),
            min_celsius=Decimal(2),
            max_celsius=Decimal(8),
            logger_id=f"LOG-{serial}",
            carrier="ColdChain",
        ),
        DEPOT,
    ).id
    s.shipments[number] = shipment
    return shipment


def _distribution(ledger: Ledger, s: Scenario) -> None:
    sh1 = _ship(ledger, s, "SH-1", s.places["Site 101"], kit_numbers(1001, 8), 1)
    outcomes = dict.fromkeys(kit_numbers(1001, 6), "received") | {"K1007": "damaged", "K1008": "missing"}
    ledger.handle(
        ConfirmReceipt(
            shipment_id=sh1,
            site_id=s.places["Site 101"],
            outcomes=outcomes,
            logger_min=Decimal(3),
            logger_max=Decimal(7),
        ),
        SITE,
    )
    ledger.handle(Dispense(kit_id=s.kit("K1001"), site_id=s.places["Site 101"], subject="SUBJ-001"), SITE)
    ledger.handle(Dispense(kit_id=s.kit("K1002"), site_id=s.places["Site 101"], subject="SUBJ-002"), SITE)
    ledger.handle(ReturnKit(kit_id=s.kit("K1002"), site_id=s.places["Site 101"], condition="unused"), SITE)
    ledger.handle(
        AuthoriseDestruction(
            kit_ids=[s.kit("K1002")],
            signature=sign(QA, Meaning.AUTHORISED_DESTRUCTION),
            reason="returned by the subject",
        ),
        QA,
    )
    ledger.handle(
        DestroyKits(
            location_id=s.places["Site 101"],
            kit_ids=[s.kit("K1002")],
            certificate="DC-1",
            method="incineration",
        ),
        SITE,
    )
    _ship(ledger, s, "SH-2", s.places["Site 102"], kit_numbers(1009, 4), 2)
    sh3 = _ship(ledger, s, "SH-3", s.places["Site 201"], ["K1013", "K1014"], 3)
    ledger.handle(
        ConfirmReceipt(
            shipment_id=sh3,
            site_id=s.places["Site 201"],
            outcomes={"K1013": "received", "K1014": "received"},
            logger_min=Decimal(3),
            logger_max=Decimal(12),
        ),
        SITE,
    )
    ledger.handle(
        DecideQuarantine(
            kit_ids=[s.kit("K1014")],
            release=True,
            signature=sign(QA, Meaning.RELEASED),
            reason="stability data cover 12 C",
        ),
        QA,
    )
    sh4 = _ship(ledger, s, "SH-4", s.places["Site 101"], kit_numbers(2001, 4), 4)
    ledger.handle(
        ConfirmReceipt(
            shipment_id=sh4,
            site_id=s.places["Site 101"],
            outcomes=dict.fromkeys(kit_numbers(2001, 4), "received"),
            logger_min=Decimal(3),
            logger_max=Decimal(7),
        ),
        SITE,
    )


@dataclass
class World:
    """A ledger holding the scenario, and a runner that has applied all of it."""

    ledger: Ledger
    runner: ProjectionRunner
    s: Scenario


@contextmanager
def scenario_world(database_url: str, batch_size: int = 17) -> Iterator[World]:
    """Build the scenario on `database_url` and catch the read models up in small batches."""
    ledger = Ledger.open(database_url)
    engine = open_engine(database_url)
    try:
        scenario = build_scenario(ledger)
        runner = ProjectionRunner(ledger, engine)
        runner.catch_up(batch_size)
        yield World(ledger, runner, scenario)
    finally:
        ledger.close()
        engine.dispose()


def dump_tables(runner: ProjectionRunner) -> dict[str, list[tuple[str, ...]]]:
    """Every row of every read-model table, as sorted text tuples, for exact comparison."""
    dumped: dict[str, list[tuple[str, ...]]] = {}
    with runner.engine.connect() as conn:
        for projection in runner.projections:
            for table in projection.metadata.sorted_tables:
                rows = conn.execute(select(table)).all()
                dumped[table.name] = sorted(tuple(_text(v) for v in row) for row in rows)
    return dumped


def _text(value: object) -> str:
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return repr(value)
