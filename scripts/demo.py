"""`lotline demo`: write a realistic, deterministic clinical supply program through the ledger.

The program is a discrete-event simulation of one double-blind, placebo-controlled trial over the
two years before today. Raw-material lots are received and released; formulation batches turn API
and excipients into active drug product (API lots are split across batches, and at least one batch
blends two API lots) at the plant, and each drug-product lot is transferred to the regional depot
that packages it; placebo is bought in from a contract manufacturer, delivered to those depots;
packaging runs fill both into blinded kits; QA, the QP and the sponsor release them country by
country; regional depots ship kits to activated sites (and the first moves some stock to a back-up
depot); sites receive them (a few damaged or missing, a few shipments with a temperature excursion
that QA then decides on), dispense them to pseudonymous subjects at monthly visits and take returns;
returned and damaged kits are destroyed under a signed authorisation. On the last day the API lot of
the latest batch is found suspect: QA opens a recall of it and the depots and most sites start
working through it (acknowledging, quarantining, dispensed kits reported with their subjects, kits
sent back and some received at the depot), so the store ends with a recall in progress, as a recall
investigator would find it.

Every step goes through the `Ledger`'s public commands with an explicit `occurred_at`, and steps run
in time order, so each aggregate's history is causally ordered and nothing is dated in the future.
The same seed and scale always give the same sequence of events (types and aggregate ids); only
the record timestamps, which the store takes from the wall clock, differ between runs.

Size: kits and shipments grow linearly with `--scale`, batches and API lots with its square root,
sites with its 2/3 power, so events grow linearly (about 8,200 per unit of scale). Scale 1 is one
trial in 5 countries, 12 activated sites, 8 batches, 1,500 kits and 60 shipments; scale 122 gives
about one million events (183,000 kits, ~4,500 shipments, 88 batches and 118 drug-product lots,
~295 activated sites).
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import secrets
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

from tqdm import tqdm

from ledger.application import Ledger
from ledger.commands import (
    AcknowledgeRecall,
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
    OpenRecall,
    OutputLot,
    Package,
    ReceiveLot,
    ReceiveLotTransfer,
    ReceiveRecallReturns,
    ReceiveReturnedKits,
    RecordDeviation,
    Recorded,
    RegisterLocation,
    RegisterTrial,
    ReleaseLot,
    ReportExcursion,
    ReportRecallKits,
    ReturnKit,
    ReturnToDepot,
    Ship,
    SponsorRelease,
    TransferLot,
    YieldLimits,
)
from ledger.config import Settings
from ledger.db import redacted
from ledger.domain import Kit, KitStatus, Location, LocationKind, LotKind, SiteStatus
from ledger.domain.recall import KitOutcome, KitReport, Recall
from ledger.errors import AlreadyExists, LedgerError
from ledger.gs1 import with_check_digit
from ledger.identity import Identity
from ledger.transparency import Transparency
from ledger.values import Actor, Meaning, Quantity, Role, sign
from scripts.db import upgrade_store

DEFAULT_SEED = 20240611
COMPANY_PREFIX = "4069999"  # a 7-digit GS1 company prefix for the fictitious sponsor
TRIAL_CODE = "LTX-301"
PRODUCT = "Lotanib 10 mg film-coated tablets"
UNITS_PER_KIT = 28  # four weeks of once-daily tablets
API_MG_PER_TABLET = 10
TRANSIT_CELSIUS = (Decimal(15), Decimal(25))  # controlled room temperature

# material, GTIN item reference, mg per tablet, lot size in kg, supplier
EXCIPIENTS = (
    ("Microcrystalline cellulose PH-102", "00020", 120, 25, "Cellulose Ingredients GmbH"),
    ("Lactose monohydrate", "00021", 60, 25, "Dairy Excipients B.V."),
    ("Magnesium stearate", "00022", 2, 1, "Lubricants S.A."),
)
# material, GTIN item reference, most units spoiled per run, lot size in units, supplier
COMPONENTS = (
    ("HDPE bottle 75 mL", "00030", 0, 5000, "PlastiPack Ltd"),
    ("Child-resistant cap 38 mm", "00031", 0, 5000, "PlastiPack Ltd"),
    ("Multi-language booklet label", "00032", 8, 10000, "LabelPrint GmbH"),
)
# country, region, relative number of sites, cities for site names
COUNTRIES = (
    ("DE", "EU", 3, ("Berlin", "Munich", "Hamburg", "Cologne", "Leipzig")),
    ("US", "NA", 4, ("Boston", "Houston", "Chicago", "Seattle", "Atlanta", "Denver")),
    ("FR", "EU", 2, ("Paris", "Lyon", "Marseille", "Toulouse")),
    ("ES", "EU", 2, ("Madrid", "Barcelona", "Valencia", "Seville")),
    ("PL", "EU", 2, ("Warsaw", "Krakow", "Gdansk", "Poznan")),
    ("IT", "EU", 2, ("Milan", "Rome", "Bologna", "Naples")),
    ("NL", "EU", 1, ("Amsterdam", "Rotterdam", "Utrecht")),
    ("BE", "EU", 1, ("Brussels", "Antwerp", "Ghent")),
    ("CZ", "EU", 1, ("Prague", "Brno")),
    ("CA", "NA", 2, ("Toronto", "Montreal", "Vancouver")),
    ("HU", "EU", 1, ("Budapest", "Debrecen")),
    ("AT", "EU", 1, ("Vienna", "Graz")),
)
CARRIERS = {"EU": "ColdChain Logistics", "NA": "MedFreight Express"}
YIELD_LIMITS = YieldLimits(low_percent=Decimal(95), high_percent=Decimal(100))
"""The product's stated yield range: a batch outside it is recorded only with its deviation."""

DEPOTS = {
    "EU": ("DE", "Central packaging and distribution depot, Frankfurt"),
    "NA": ("US", "North America distribution depot, Indianapolis"),
}
BACKUP_DEPOT = ("DE", "Back-up stock depot, Hamburg")
"""Where the first region's depot keeps a back-up stock (a depot-to-depot transfer, late in the trial)."""
BACKUP_KITS = 12


# --- the demo users -------------------------------------------------------------------------------

DEMO_ACTORS: dict[str, Actor] = {
    "admin": Actor("admin", Role.ADMIN, "Ada Adler"),
    "manufacturing": Actor("manufacturing", Role.MANUFACTURING, "Max Brenner"),
    "manufacturing2": Actor("manufacturing2", Role.MANUFACTURING, "Mia Keller"),
    "qa": Actor("qa", Role.QA, "Quinn Albrecht"),
    "qp": Actor("qp", Role.QP, "Paula Quist"),
    "depot": Actor("depot", Role.DEPOT, "Dev Patel"),
    "site": Actor("site", Role.SITE, "Sam Sutherland"),
    "recall_investigator": Actor("recall_investigator", Role.RECALL_INVESTIGATOR, "Rita Rossi"),
    "inspector": Actor("inspector", Role.INSPECTOR, "Ines Ortega"),
}
"""One demo user per role (two in manufacturing, for second-person checks), keyed by principal."""


# --- sizes ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sizes:
    """How big a program `--scale` asks for."""

    kits: int
    batches: int
    api_lots: int
    sites: int
    unactivated_sites: int
    shipments: int
    countries: int

    @classmethod
    def for_scale(cls, scale: float) -> Sizes:
        if not (scale > 0 and math.isfinite(scale)):
            raise ValueError(f"scale must be a positive number, got {scale!r}")
        sites = max(3, round(12 * scale ** (2 / 3)))
        return cls(
            kits=max(40, round(1500 * scale)),
            batches=max(2, round(8 * math.sqrt(scale))),
            api_lots=max(3, round(3 * math.sqrt(scale))),
            sites=sites,
            unactivated_sites=max(1, round(0.12 * sites)),
            shipments=max(4, round(60 * scale**0.9)),
            countries=min(len(COUNTRIES), sites, 5 + max(0, math.floor(math.log2(scale)))),
        )


@dataclass(frozen=True, slots=True)
class DemoSummary:
    """What one demo run wrote."""

    events: int
    kits: int
    shipments: int
    sites: int
    lots: int
    batches: int
    packaging_runs: int
    subjects: int
    dispensed: int
    seconds: float
    recall_number: str = ""
    recall_kits: int = 0
    plant: UUID | None = None
    depots: tuple[UUID, ...] = ()

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


class StoreNotEmpty(RuntimeError):
    """The demo writes only into an empty store: its ids would collide with what is there."""

    def __init__(self, events: int) -> None:
        super().__init__(f"the store already holds {events} events; the demo needs an empty store")
        self.events = events


# --- identifiers ----------------------------------------------------------------------------------


def gtin(item_ref: str) -> str:
    return with_check_digit("0" + COMPANY_PREFIX + item_ref)


def gln(location_ref: int) -> str:
    return with_check_digit(COMPANY_PREFIX + f"{location_ref:05d}")


def sscc(serial: int) -> str:
    return with_check_digit("0" + COMPANY_PREFIX + f"{serial:09d}")


KIT_GTIN = gtin("00050")
API_GTIN = gtin("00010")
ACTIVE_DP_GTIN = gtin("00040")
PLACEBO_DP_GTIN = gtin("00041")


# --- the simulation's own state (the ledger's state is only changed through its commands) --------


@dataclass(slots=True, eq=False)
class _Kit:
    number: str
    id: UUID
    arm: str
    status: KitStatus = KitStatus.AVAILABLE
    site: _Site | None = None


@dataclass(slots=True, eq=False)
class _Subject:
    number: int
    visits_left: int
    kit: _Kit | None = None


@dataclass(slots=True, eq=False)
class _Site:
    index: int
    number: str
    country: str
    region: str
    name: str
    weight: float
    id: UUID | None = None
    active: bool = False
    kits: list[_Kit] = field(default_factory=list)
    # per arm, the subjects expecting a kit at their next visit: a heap of (due day, number, subject)
    due: dict[str, list[tuple[float, int, _Subject]]] = field(default_factory=lambda: {"A": [], "P": []})


@dataclass(slots=True, eq=False)
class _Lot:
    kind: LotKind
    gtin: str
    number: str
    material: str
    amount: Decimal  # in `unit`
    unit: str
    supplier: str | None
    location: str  # key of _Program.places
    shelf_life_days: int
    retest_days: int | None = None
    miskeyed: bool = False
    first_use: float | None = None
    id: UUID | None = None
    use_by: date | None = None  # the earlier of expiry and retest, known once received


class _Pool:
    """Lots of one material used up in order: a need that outlasts a lot takes the rest from the next."""

    def __init__(self, lots: list[_Lot], base_per_unit: int) -> None:
        self.lots = lots
        self.left = [int(lot.amount * base_per_unit) for lot in lots]
        self.current = 0

    def take(self, need: int) -> list[tuple[_Lot, int]]:
        """[(lot, amount in base units)] covering `need`, in lot order."""
        pieces = []
        while need > 0:
            if self.current == len(self.lots):
                raise RuntimeError(f"demo plan error: {self.lots[0].material} lots run out")
            taken = min(need, self.left[self.current])
            if taken:
                pieces.append((self.lots[self.current], taken))
            self.left[self.current] -= taken
            need -= taken
            if self.left[self.current] == 0:
                self.current += 1
        return pieces


@dataclass(slots=True, eq=False)
class _Run:
    """A packaging run, with the active formulation batch made for it."""

    index: int
    region: str
    kit_list: list[tuple[str, str]]
    batch_day: float
    active_need: int  # units the active arm issues (kits, retention samples, rejects)
    placebo_need: int
    rejects: tuple[int, int]
    samples: int = 2 * UNITS_PER_KIT
    theoretical: int = 0
    api: list[tuple[_Lot, int]] = field(default_factory=list)  # (lot, mg)
    excipients: list[tuple[_Lot, int]] = field(default_factory=list)  # (lot, mg)
    components: list[tuple[_Lot, int]] = field(default_factory=list)  # (lot, units)
    placebo: _Lot | None = None
    dp_lot: _Lot | None = None
    batch_id: UUID | None = None
    id: UUID | None = None
    countries: set[str] = field(default_factory=set)
    stock: list[_Kit] = field(default_factory=list)  # kits at the depot, the next to ship last


def _known(ident: UUID | None) -> UUID:
    """An id the simulation has already recorded (steps run in time order, so it always is)."""
    assert ident is not None, "demo step ran before the step that creates its subject"
    return ident


def _split(total: int, weights: Sequence[float], minimum: int) -> list[int]:
    """`total` split in proportion to `weights` (largest remainder), each part at least `minimum`."""
    spare = total - minimum * len(weights)
    if spare < 0:
        return [minimum] * len(weights)
    shares = [spare * w / sum(weights) for w in weights]
    parts = [math.floor(s) for s in shares]
    by_remainder = sorted(range(len(shares)), key=lambda i: parts[i] - shares[i])
    for i in by_remainder[: spare - sum(parts)]:
        parts[i] += 1
    return [p + minimum for p in parts]


def _spread(count: int, weights: Sequence[int]) -> list[int]:
    """Which of the weighted groups each of `count` items goes to, interleaved evenly."""
    parts = _split(count, weights, 1 if count >= len(weights) and all(weights) else 0)
    order = sorted(((k + 0.5) / n, g) for g, n in enumerate(parts) for k in range(n))
    return [g for _, g in order]


def _region(country: str) -> str:
    return next(c[1] for c in COUNTRIES if c[0] == country)


def _one_decimal(value: float) -> Decimal:
    return Decimal(f"{value:.1f}")


class _Program:
    """Plans the program, then runs every step in time order through the ledger's commands."""

    def __init__(self, ledger: Ledger, seed: int, sizes: Sizes, start: datetime, days: int) -> None:
        self.ledger = ledger
        self.rng = random.Random(seed)
        self.sizes = sizes
        self.start = start
        self.days = days
        self.actor = DEMO_ACTORS
        self._queue: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = 0
        self.today = 0.0
        self.events = 0
        self.trial_id: UUID | None = None
        self.places: dict[str, UUID] = {}
        self.countries: list[str] = []
        self.regions: list[str] = []
        self.sites: list[_Site] = []
        self.lots: list[_Lot] = []
        self.runs: list[_Run] = []
        self._incidents: dict[int, str] = {}
        self._decisions = {"transit": 0, "storage": 0}
        self.kits = self.shipments = self.dispensed = self.batches = 0
        self.transfers = 0  # shipments between depots
        self.enrolled = 0  # subject numbers handed out; some never come to their first visit
        self.recall_number = ""
        self.recall_kits = 0
        self.treated: set[int] = set()

    # --- the clock -----------------------------------------------------------------------------------

    def at(self, day: float, step: Callable[..., None], *args: Any) -> None:
        """Schedule `step(*args)` on program day `day`."""
        heapq.heappush(self._queue, (day, self._seq, step, args))
        self._seq += 1

    def when(self, day: float | None = None) -> datetime:
        """Day 12.5 is 12 days after the start at 12:30 UTC: steps fall between 07:00 and 18:00."""
        day = self.today if day is None else day
        return self.start + timedelta(days=int(day), hours=7 + (day % 1) * 11)

    def uniform(self, low: float, high: float) -> float:
        return self.rng.uniform(low, high)

    def run(self, progress: bool) -> None:
        """Take the steps in time order (ties in the order they were scheduled)."""
        with tqdm(
            total=self.days,
            unit="day",
            desc="demo program",
            file=sys.stderr,
            disable=not progress,
            dynamic_ncols=True,
        ) as bar:
            shown = 0
            while self._queue:
                day, _, step, args = heapq.heappop(self._queue)
                self.today = day
                step(*args)
                if int(day) > shown:
                    bar.update(int(day) - shown)
                    shown = int(day)
                    bar.set_postfix(
                        events=self.events, kits=self.kits, shipments=self.shipments, refresh=False
                    )

    def wrote(self, result: Recorded | int) -> None:
        """Count what a step wrote (for the progress bar; the summary reads the chain head)."""
        self.events += len(result.events) if isinstance(result, Recorded) else result

    # --- planning ------------------------------------------------------------------------------------

    def plan(self, recall: bool = True) -> None:
        self._plan_places()
        self._plan_runs()
        self._plan_lots()
        self._plan_manufacturing()
        self._plan_distribution()
        if recall:
            self._plan_recall()

    def _plan_places(self) -> None:
        chosen = COUNTRIES[: self.sizes.countries]
        self.countries = [c[0] for c in chosen]
        self.regions = sorted({c[1] for c in chosen}, key=lambda r: r != "EU")
        self.at(0.0, self._register_trial)
        self.at(
            0.01,
            self._register_place,
            "plant",
            LocationKind.MANUFACTURING_SITE,
            "DE",
            "Lotline Pharma clinical manufacturing plant, Darmstadt",
            1,
        )
        for n, region in enumerate(self.regions):
            country, name = DEPOTS[region]
            self.at(0.02 + n / 100, self._register_place, region, LocationKind.DEPOT, country, name, 2 + n)
        country, name = BACKUP_DEPOT
        last = 0.02 + len(self.regions) / 100
        self.at(last, self._register_place, "backup", LocationKind.DEPOT, country, name, 9)
        total = self.sizes.sites + self.sizes.unactivated_sites
        never_activated = set(self.rng.sample(range(total), self.sizes.unactivated_sites))
        for (country, region, _, cities), count in zip(
            chosen, _split(total, [c[2] for c in chosen], 1), strict=True
        ):
            for k in range(count):
                city = f"{cities[k % len(cities)]} {k // len(cities) + 1}"
                site = _Site(
                    len(self.sites),
                    f"{self.countries.index(country) + 1}{k + 1:03d}",
                    country,
                    region,
                    f"Clinical research unit {city}",
                    self.uniform(0.5, 2.0),
                )
                registered = self.uniform(0.02, 0.45) * self.days
                self.at(registered, self._register_site, site)
                if site.index not in never_activated:
                    self.at(registered + self.uniform(20, 75), self._activate_site, site)
                self.sites.append(site)

    def _plan_runs(self) -> None:
        """One packaging run per active batch; kit lists in permuted blocks; runs spread over regions."""
        count, step = self.sizes.batches, 0.5 * self.days / self.sizes.batches
        region_sites = [sum(1 for s in self.sites if s.region == r) for r in self.regions]
        regions = _spread(count, region_sites)
        sizes = _split(self.sizes.kits, [self.uniform(0.7, 1.3) for _ in range(count)], 8)
        first_kit = 1
        for r, kits in enumerate(sizes):
            arms = self._blocks(kits)
            kit_list = [(f"K{first_kit + i:06d}", arm) for i, arm in enumerate(arms)]
            first_kit += kits
            active = arms.count("A")
            rejects = (self.rng.randint(0, 30), self.rng.randint(0, 30))
            samples = 2 * UNITS_PER_KIT
            batch_day = 0.08 * self.days + r * step + self.uniform(0, step / 2)
            active_need = active * UNITS_PER_KIT + samples + rejects[0]
            placebo_need = (kits - active) * UNITS_PER_KIT + samples + rejects[1]
            self.runs.append(
                _Run(
                    r,
                    self.regions[regions[r]],
                    kit_list,
                    batch_day,
                    active_need,
                    placebo_need,
                    rejects,
                    samples,
                )
            )

    def _blocks(self, kits: int) -> list[str]:
        """The kit list's treatments: permuted blocks of four, two active (A) and two placebo (P)."""
        arms: list[str] = []
        while len(arms) < kits:
            block = ["A", "A", "P", "P"]
            self.rng.shuffle(block)
            arms.extend(block)
        return arms[:kits]

    def _plan_lots(self) -> None:
        """Every raw-material and placebo lot, sized so the batches and runs that use it fit."""
        for run in self.runs:
            run.theoretical = math.ceil(run.active_need / 0.96 / 500) * 500
        api = _Pool(self._api_lots(), 1000)
        tablets = sum(run.theoretical for run in self.runs)
        excipients = []
        for material, ref, mg, kg, supplier in EXCIPIENTS:
            prefix = "".join(w[0] for w in material.split()[:2]).upper()
            lots = [
                self._lot(
                    LotKind.EXCIPIENT,
                    gtin(ref),
                    f"{prefix}-{n + 1:04d}",
                    material,
                    Decimal(kg),
                    "kg",
                    supplier,
                    "plant",
                    4 * 365,
                )
                for n in range(math.ceil(tablets * mg * 1.02 / (kg * 1_000_000)))
            ]
            excipients.append((_Pool(lots, 1_000_000), mg))
        excipients[0][0].lots[0].miskeyed = True
        components = {region: self._component_pools(region) for region in self.regions}
        placebo = self._placebo_lots()
        for run in self.runs:
            run.api = api.take(run.theoretical * API_MG_PER_TABLET)
            run.excipients = [p for pool, mg in excipients for p in pool.take(run.theoretical * mg)]
            run.placebo = placebo[run.index]
            run.components = [
                p
                for pool, spoiled in components[run.region]
                for p in pool.take(len(run.kit_list) + self.rng.randint(0, spoiled))
            ]

    def _api_lots(self) -> list[_Lot]:
        """The first API lot ends half-way through the second batch, which therefore blends two lots."""
        need = [run.theoretical * API_MG_PER_TABLET for run in self.runs]
        first = need[0] + need[1] // 2
        rest = (sum(need) - first) * 1.05 / (self.sizes.api_lots - 1)
        grams = [math.ceil(first / 1000)] + [math.ceil(rest / 1000)] * (self.sizes.api_lots - 1)
        return [
            self._lot(
                LotKind.API,
                API_GTIN,
                f"API-{n + 1:04d}",
                "Lotanib free base",
                Decimal(g),
                "g",
                "Northfield Fine Chemicals",
                "plant",
                5 * 365,
                3 * 365,
            )
            for n, g in enumerate(grams)
        ]

    def _component_pools(self, region: str) -> list[tuple[_Pool, int]]:
        runs = [run for run in self.runs if run.region == region]
        kits = sum(len(run.kit_list) for run in runs)
        pools = []
        for material, ref, spoiled, size, supplier in COMPONENTS:
            count = math.ceil((kits + spoiled * len(runs)) / size)
            lots = [
                self._lot(
                    LotKind.PACKAGING_COMPONENT,
                    gtin(ref),
                    f"C{ref[-2:]}-{region}-{n + 1:04d}",
                    material,
                    Decimal(size),
                    "unit",
                    supplier,
                    region,
                    5 * 365,
                )
                for n in range(count)
            ]
            pools.append((_Pool(lots, 1), spoiled))
        return pools

    def _placebo_lots(self) -> dict[int, _Lot]:
        """Placebo comes from a contract manufacturer, delivered to the depot that packages: each lot
        fills three consecutive runs of one region (by run index)."""
        by_run: dict[int, _Lot] = {}
        for region in self.regions:
            runs = [run for run in self.runs if run.region == region]
            for k in range(0, len(runs), 3):
                group = runs[k : k + 3]
                lot = self._lot(
                    LotKind.DRUG_PRODUCT,
                    PLACEBO_DP_GTIN,
                    f"PBO-{len(set(by_run.values())) + 1:04d}",
                    "Placebo film-coated tablets (matching lotanib 10 mg)",
                    Decimal(math.ceil(sum(run.placebo_need for run in group) * 1.02 / 1000) * 1000),
                    "unit",
                    "Contract Pharma Services AG",
                    region,
                    3 * 365,
                )
                by_run.update({run.index: lot for run in group})
        return by_run

    def _lot(
        self,
        kind: LotKind,
        gtin14: str,
        number: str,
        material: str,
        amount: Decimal,
        unit: str,
        supplier: str,
        location: str,
        shelf_life: int,
        retest: int | None = None,
    ) -> _Lot:
        lot = _Lot(kind, gtin14, number, material, amount, unit, supplier, location, shelf_life, retest)
        self.lots.append(lot)
        return lot

    def _plan_manufacturing(self) -> None:
        """Per run: formulate, QC release, package, QA, QP, sponsor release per country; lots arrive
        three to six weeks before their first use and are released after testing."""
        for run in self.runs:
            dp_release = run.batch_day + self.uniform(10, 20)
            packaged = dp_release + self.uniform(2, 8)
            self.at(run.batch_day, self._formulate, run)
            self.at(dp_release, self._release_dp_lot, run)
            self.at(dp_release + 0.2, self._send_dp_lot, run)
            self.at(packaged - 0.5, self._receive_dp_lot, run)  # in transit for days
            self.at(packaged, self._package, run)
            qa = packaged + self.uniform(3, 8)
            day = qa + self.uniform(1, 3)
            self.at(qa, self._dispose, run)
            self.at(day, self._certify, run)
            for country in self.countries:
                if _region(country) == run.region:
                    day += self.uniform(1, 5)
                    self.at(day, self._sponsor_release, run, country)
            for lot, _ in run.api + run.excipients:
                self._first_use(lot, run.batch_day)
            for lot, _ in run.components:
                self._first_use(lot, packaged)
            self._first_use(run.placebo, packaged)
        deviations = max(1, round(0.1 * len(self.runs)))
        for k in range(deviations):
            run = self.runs[min(len(self.runs) - 1, 1 + k * len(self.runs) // deviations)]
            self.at(run.batch_day + self.uniform(1, 5), self._deviation, run, k + 1)
        for lot in self.lots:
            first = lot.first_use if lot.first_use is not None else 0.7 * self.days
            received = max(0.1, first - self.uniform(25, 40))
            released = received + min(self.uniform(5, 15), 0.6 * (first - received))
            self.at(received, self._receive_lot, lot)
            if lot.miskeyed:
                self.at((received + released) / 2, self._correct_quantity, lot)
            self.at(released, self._release_raw_lot, lot)

    @staticmethod
    def _first_use(lot: _Lot | None, day: float) -> None:
        assert lot is not None
        lot.first_use = day if lot.first_use is None else min(lot.first_use, day)

    def _plan_distribution(self) -> None:
        """Shipments per region in proportion to its kits, from shortly after its first batch until
        five weeks before the end; incidents on given shipments; excursions at sites; destruction."""
        days, n = self.days, self.sizes.shipments
        kits = {r: sum(len(run.kit_list) for run in self.runs if run.region == r) for r in self.regions}
        planned: list[tuple[float, str, int]] = []
        for region, count in zip(self.regions, _split(n, [kits[r] for r in self.regions], 1), strict=True):
            first = min(run.batch_day for run in self.runs if run.region == region) + 45
            sizes = _split(round(0.9 * kits[region]), [self.uniform(0.6, 1.4) for _ in range(count)], 1)
            planned += [(self.uniform(first, 0.93 * days), region, size) for size in sizes]
        for day, region, size in sorted(planned):
            self.at(day, self._ship, region, size)
        self._incidents[1] = "damaged_missing"
        excursions = max(1, round(0.015 * n))
        for k in range(excursions):
            self._incidents[2 + k * max(1, (n - 3) // excursions)] = "excursion"
        for _ in range(max(1, round(0.01 * n))):
            self.at(self.uniform(0.45, 0.85) * days, self._storage_excursion)
        for k, day in enumerate((0.5 * days, 0.75 * days, days - 25)):
            self.at(day, self._destruction_round, k + 1)
        self.at(0.6 * days, self._send_backup_stock)

    def _plan_recall(self) -> None:
        """The last day, after every other step: a recall of the latest batch's API lot opens."""
        lot = self.runs[-1].api[0][0]
        self.at(self.days - 0.95, self._open_recall, lot)

    # --- reference data --------------------------------------------------------------------------------

    def _register_trial(self) -> None:
        self.trial_id = self.ledger.handle(
            RegisterTrial(
                code=TRIAL_CODE,
                sponsor="Lotline Therapeutics",
                title="A phase III, randomised, double-blind, placebo-controlled study of lotanib 10 mg "
                "once daily in adults with moderate to severe plaque psoriasis",
                countries=self.countries,
                do_not_ship_days=45,
                do_not_dispense_days=14,
                occurred_at=self.when(),
            ),
            self.actor["admin"],
        ).id
        self.wrote(1)

    def _register_place(self, key: str, kind: LocationKind, country: str, name: str, ref: int) -> None:
        self.places[key] = self.ledger.handle(
            RegisterLocation(
                gln=gln(ref),
                kind=kind,
                name=name,
                country=country,
                occurred_at=self.when(),
            ),
            self.actor["admin"],
        ).id
        self.wrote(1)

    def _register_site(self, site: _Site) -> None:
        site.id = self.ledger.handle(
            RegisterLocation(
                gln=gln(100 + site.index),
                kind=LocationKind.CLINICAL_SITE,
                name=site.name,
                country=site.country,
                trial_id=self.trial_id,
                site_number=site.number,
                occurred_at=self.when(),
            ),
            self.actor["admin"],
        ).id
        self.wrote(1)

    def _activate_site(self, site: _Site) -> None:
        self.wrote(
            self.ledger.handle(
                ActivateSite(site_id=_known(site.id), occurred_at=self.when()), self.actor["admin"]
            )
        )
        site.active = True

    # --- materials and manufacturing -------------------------------------------------------------------

    def _receive_lot(self, lot: _Lot) -> None:
        receiver = self.actor["manufacturing" if lot.location == "plant" else "depot"]
        made = self.when().date() - timedelta(days=self.rng.randint(20, 120))
        keyed = lot.amount
        if lot.miskeyed:  # two digits swapped at goods receipt: 25 kg keyed as 52 kg
            keyed = Decimal(str(lot.amount)[::-1]) if str(lot.amount)[::-1] != str(lot.amount) else keyed * 10
        lot.id = self.ledger.handle(
            ReceiveLot(
                gtin=lot.gtin,
                lot_number=lot.number,
                kind=lot.kind,
                material=lot.material,
                quantity=Quantity.of(keyed, lot.unit),
                location_id=self.places[lot.location],
                manufactured_on=made,
                expires_on=made + timedelta(days=lot.shelf_life_days),
                retest_on=made + timedelta(days=lot.retest_days) if lot.retest_days else None,
                supplier=lot.supplier,
                supplier_lot=f"S{self.rng.randint(100000, 999999)}",
                occurred_at=self.when(),
            ),
            receiver,
        ).id
        lot.use_by = made + timedelta(days=lot.retest_days or lot.shelf_life_days)
        self.wrote(1)

    def _correct_quantity(self, lot: _Lot) -> None:
        self.wrote(
            self.ledger.handle(
                CorrectLotQuantity(
                    lot_id=_known(lot.id),
                    corrects_version=1,
                    quantity=Quantity.of(lot.amount, lot.unit),
                    reason=f"Quantity keyed wrongly at goods receipt; delivery note and CoA state "
                    f"{lot.amount} {lot.unit}",
                    occurred_at=self.when(),
                ),
                self.actor["qa"],
            )
        )

    def _release(self, lot_id: UUID, results_ref: str) -> None:
        qa, at = self.actor["qa"], self.when()
        self.wrote(
            self.ledger.handle(
                ReleaseLot(
                    lot_id=lot_id,
                    signature=sign(qa, Meaning.RELEASED, at),
                    results_ref=results_ref,
                    occurred_at=at,
                ),
                qa,
            )
        )

    def _release_raw_lot(self, lot: _Lot) -> None:
        self._release(_known(lot.id), f"{'QC' if lot.kind == LotKind.API else 'CoA'}-{lot.number}")

    def _release_dp_lot(self, run: _Run) -> None:
        assert run.dp_lot is not None
        self._release(_known(run.dp_lot.id), f"QC-{run.dp_lot.number}")

    def _formulate(self, run: _Run) -> None:
        """Weigh API and excipients into one batch; the DP expires 30 months on, or with its API."""
        actual = math.floor(run.theoretical * self.uniform(0.965, 0.99))
        inputs = [(_known(lot.id), _mg(mg)) for lot, mg in run.api + run.excipients]
        made = self.when().date()
        api_use_by = min(lot.use_by for lot, _ in run.api if lot.use_by is not None)
        number = f"LTX10-{run.index + 1:04d}"
        performer, checker = self._two_people(run.index)
        run.batch_id, dp_id = self.ledger.handle(
            Formulate(
                batch_number=f"MB-{run.index + 1:04d}",
                product=PRODUCT,
                location_id=self.places["plant"],
                inputs=inputs,
                output=OutputLot(
                    gtin=ACTIVE_DP_GTIN,
                    lot_number=number,
                    material=PRODUCT,
                    expires_on=min(made + timedelta(days=913), api_use_by),
                ),
                theoretical_yield=Quantity.of(run.theoretical, "unit"),
                actual_yield=Quantity.of(actual, "unit"),
                yield_limits=YIELD_LIMITS,
                equipment=[
                    "GRN-0101 high-shear granulator",
                    "FBD-0102 fluid-bed dryer",
                    "TAB-0201 rotary tablet press",
                    "COT-0301 pan coater",
                ],
                checked_by=checker,
                occurred_at=self.when(),
            ),
            performer,
        ).created
        run.dp_lot = _Lot(
            LotKind.DRUG_PRODUCT,
            ACTIVE_DP_GTIN,
            number,
            PRODUCT,
            Decimal(actual),
            "unit",
            None,
            "plant",
            913,
            id=dp_id,
        )
        self.batches += 1
        self.wrote(2 + len(inputs))

    def _send_dp_lot(self, run: _Run) -> None:
        """The released drug-product lot leaves the plant for the regional depot that packages it."""
        assert run.dp_lot is not None
        self.wrote(
            self.ledger.handle(
                TransferLot(
                    lot_id=_known(run.dp_lot.id),
                    transfer_number=f"TR-{run.index + 1:04d}",
                    from_id=self.places["plant"],
                    to_id=self.places[run.region],
                    occurred_at=self.when(),
                ),
                self.actor["manufacturing"],
            )
        )

    def _receive_dp_lot(self, run: _Run) -> None:
        assert run.dp_lot is not None
        self.wrote(
            self.ledger.handle(
                ReceiveLotTransfer(
                    lot_id=_known(run.dp_lot.id), location_id=self.places[run.region], occurred_at=self.when()
                ),
                self.actor["depot"],
            )
        )

    def _two_people(self, n: int) -> tuple[Actor, Actor]:
        """Performer and second-person checker, taking turns."""
        a, b = self.actor["manufacturing"], self.actor["manufacturing2"]
        return (a, b) if n % 2 == 0 else (b, a)

    def _deviation(self, run: _Run, n: int) -> None:
        self.wrote(
            self.ledger.handle(
                RecordDeviation(
                    batch_id=_known(run.batch_id),
                    number=f"DEV-{self.when().year}-{n:03d}",
                    description="Granulation end point reached 4 minutes after the range in the master batch "
                    "record; blend uniformity and dissolution within specification",
                    classification="minor",
                    occurred_at=self.when(),
                ),
                self.actor["qa"],
            )
        )

    def _package(self, run: _Run) -> None:
        assert run.dp_lot is not None and run.placebo is not None
        arms = [
            Arm(
                treatment=treatment,
                dp_lot_id=_known(lot.id),
                units_per_kit=UNITS_PER_KIT,
                units_issued=need,
                samples=run.samples,
                rejects=rejects,
            )
            for treatment, lot, need, rejects in (
                ("A", run.dp_lot, run.active_need, run.rejects[0]),
                ("P", run.placebo, run.placebo_need, run.rejects[1]),
            )
        ]
        performer, checker = self._two_people(run.index + 1)
        run.id = self.ledger.handle(
            Package(
                batch_number=f"PK-{run.index + 1:04d}",
                trial_id=_known(self.trial_id),
                location_id=self.places[run.region],
                kit_gtin=KIT_GTIN,
                label_version="LBL-LTX301-v3",
                arms=arms,
                kit_list=run.kit_list,
                components=[(_known(lot.id), Quantity.of(units, "unit")) for lot, units in run.components],
                checked_by=checker,
                occurred_at=self.when(),
            ),
            performer,
        ).id
        run.stock = [_Kit(number, Kit.create_id(KIT_GTIN, number), arm) for number, arm in run.kit_list][::-1]
        self.kits += len(run.kit_list)
        self.wrote(3 + len(run.components) + len(run.kit_list))

    def _dispose(self, run: _Run) -> None:
        qa, at = self.actor["qa"], self.when()
        self.wrote(
            self.ledger.handle(
                DisposePackaging(
                    run_id=_known(run.id),
                    signature=sign(qa, Meaning.RELEASED, at),
                    released=True,
                    occurred_at=at,
                ),
                qa,
            )
        )

    def _certify(self, run: _Run) -> None:
        qp, at = self.actor["qp"], self.when()
        self.wrote(
            self.ledger.handle(
                CertifyPackaging(
                    run_id=_known(run.id),
                    signature=sign(qp, Meaning.CERTIFIED, at),
                    occurred_at=at,
                ),
                qp,
            )
        )

    def _sponsor_release(self, run: _Run, country: str) -> None:
        qa, at = self.actor["qa"], self.when()
        self.wrote(
            self.ledger.handle(
                SponsorRelease(
                    run_id=_known(run.id),
                    country=country,
                    signature=sign(qa, Meaning.SPONSOR_RELEASED, at),
                    occurred_at=at,
                ),
                qa,
            )
        )
        run.countries.add(country)

    # --- distribution ----------------------------------------------------------------------------------

    def _ship(self, region: str, size: int) -> None:
        """Ship the oldest released kits to an activated site; wait a week when there are none."""
        released = {c for run in self.runs if run.region == region and run.stock for c in run.countries}
        sites = [s for s in self.sites if s.active and s.region == region and s.country in released]
        if not sites:
            if self.today + 10 < 0.95 * self.days:
                self.at(self.today + self.uniform(5, 10), self._ship, region, size)
            return
        site = self.rng.choices(sites, [s.weight for s in sites])[0]
        kits: list[_Kit] = []
        for run in self.runs:
            if run.region == region and site.country in run.countries:
                while run.stock and len(kits) < size:
                    kits.append(run.stock.pop())
        self.shipments += 1
        n = self.shipments
        shipment_id = self.ledger.handle(
            Ship(
                shipment_number=f"SH-{n:06d}",
                sscc=sscc(n),
                from_id=self.places[region],
                to_id=_known(site.id),
                kit_ids=[k.id for k in kits],
                min_celsius=TRANSIT_CELSIUS[0],
                max_celsius=TRANSIT_CELSIUS[1],
                logger_id=f"TL-{n:06d}",
                carrier=CARRIERS[region],
                occurred_at=self.when(),
            ),
            self.actor["depot"],
        ).id
        self.wrote(1 + len(kits))
        for kit in kits:
            kit.status = KitStatus.IN_TRANSIT
        transit = self.uniform(1, 4) if region == "EU" else self.uniform(1, 3)
        self.at(self.today + transit, self._confirm_receipt, shipment_id, site, kits, self._incidents.get(n))

    def _send_backup_stock(self) -> None:
        """The first region's depot moves the newest kits of its latest run with stock to the back-up
        depot (a depot-to-depot transfer), which receives them into its own stock two days later.
        They stay there: back-up stock, shipped to no site."""
        region = self.regions[0]
        runs = [run for run in self.runs if run.region == region and len(run.stock) >= 4]
        if not runs:
            return
        run = max(runs, key=lambda r: len(r.stock))
        n = min(BACKUP_KITS, len(run.stock) // 2)
        kits, run.stock = run.stock[:n], run.stock[n:]  # the newest: shipped last
        self.transfers += 1
        shipment_id = self.ledger.handle(
            Ship(
                shipment_number="TRF-000001",
                sscc=sscc(900_000_001),
                from_id=self.places[region],
                to_id=self.places["backup"],
                kit_ids=[k.id for k in kits],
                min_celsius=TRANSIT_CELSIUS[0],
                max_celsius=TRANSIT_CELSIUS[1],
                carrier=CARRIERS[region],
                occurred_at=self.when(),
            ),
            self.actor["depot"],
        ).id
        self.wrote(1 + len(kits))
        self.at(self.today + 2, self._receive_backup_stock, shipment_id, kits)

    def _receive_backup_stock(self, shipment_id: UUID, kits: list[_Kit]) -> None:
        self.wrote(
            self.ledger.handle(
                ConfirmReceipt(
                    shipment_id=shipment_id,
                    site_id=self.places["backup"],
                    outcomes={k.number: "received" for k in kits},
                    logger_min=Decimal("18.2"),
                    logger_max=Decimal("22.9"),
                    occurred_at=self.when(),
                ),
                self.actor["depot"],
            )
        )

    def _confirm_receipt(
        self, shipment_id: UUID, site: _Site, kits: list[_Kit], incident: str | None
    ) -> None:
        """Kits mostly arrive intact; a logger reading above 25 °C quarantines the intact ones."""
        outcomes = {}
        for kit in kits:
            draw = self.rng.random()
            outcomes[kit.number] = "damaged" if draw < 0.004 else "missing" if draw < 0.006 else "received"
        if incident == "damaged_missing" and len(kits) >= 3:
            outcomes[kits[0].number], outcomes[kits[1].number] = "damaged", "missing"
        excursion = incident == "excursion"
        high = self.uniform(26.5, 31) if excursion else self.uniform(21, 24.5)
        self.wrote(
            self.ledger.handle(
                ConfirmReceipt(
                    shipment_id=shipment_id,
                    site_id=_known(site.id),
                    outcomes=outcomes,
                    logger_min=_one_decimal(self.uniform(16, 19)),
                    logger_max=_one_decimal(high),
                    occurred_at=self.when(),
                ),
                self.actor["site"],
            )
        )
        intact = []
        for kit in kits:
            outcome = outcomes[kit.number]
            if outcome == "missing":
                kit.status = KitStatus.MISSING
                continue
            kit.site = site
            site.kits.append(kit)
            kit.status = KitStatus.DAMAGED if outcome == "damaged" else KitStatus.RECEIVED
            if outcome == "received":
                intact.append(kit)
        if excursion and intact:
            for kit in intact:
                kit.status = KitStatus.QUARANTINED
            self.at(self.today + self.uniform(2, 6), self._decide_quarantine, intact, "transit")
        else:
            self._plan_use(intact)

    def _plan_use(self, kits: list[_Kit]) -> None:
        """Book received kits to visits: the subject of the kit's arm due soonest, if due before the
        next resupply (about ten weeks), else a new subject randomised to that arm; a few kits are
        sent back unused instead."""
        for kit in kits:
            assert kit.site is not None
            draw = self.rng.random()
            if draw >= 0.9:
                day = self.today + self.uniform(30, 90)
                if draw < 0.92 and day < self.days - 1:
                    self.at(day, self._return, kit)
                continue
            due = kit.site.due[kit.arm]
            while due and due[0][0] < self.today - 60:
                heapq.heappop(due)  # missed two visits: discontinued, their last kit not returned
            if due and due[0][0] <= self.today + 70:
                visit, _, subject = heapq.heappop(due)
                day = max(visit, self.today + self.uniform(0.5, 3))
            else:
                self.enrolled += 1
                subject = _Subject(self.enrolled, self.rng.randint(4, 12))
                day = self.today + self.uniform(1, 21)
            if day >= self.days - 1:
                continue
            subject.visits_left -= 1
            self.at(day, self._dispense, kit, subject, subject.visits_left == 0)
            if subject.visits_left > 0:
                heapq.heappush(due, (day + self.uniform(26, 30), subject.number, subject))

    def _storage_excursion(self) -> None:
        """A site fridge-room logger shows a temperature excursion: its kits go to quarantine."""
        sites = [s for s in self.sites if s.active]
        self.rng.shuffle(sites)
        for site in sites:
            kits = [k for k in site.kits if k.status == KitStatus.RECEIVED]
            if len(kits) >= 2:
                kits = kits[: self.rng.randint(2, 6)]
                self.wrote(
                    self.ledger.handle(
                        ReportExcursion(
                            location_id=_known(site.id),
                            kit_ids=[k.id for k in kits],
                            min_celsius=_one_decimal(self.uniform(18, 21)),
                            max_celsius=_one_decimal(self.uniform(27, 33)),
                            duration_minutes=self.rng.randint(90, 600),
                            occurred_at=self.when(),
                        ),
                        self.actor["site"],
                    )
                )
                for kit in kits:
                    kit.status = KitStatus.QUARANTINED
                self.at(self.today + self.uniform(2, 6), self._decide_quarantine, kits, "storage")
                return
        if self.today + 10 < 0.9 * self.days:  # no site holds two kits yet: look again later
            self.at(self.today + 10, self._storage_excursion)

    def _decide_quarantine(self, kits: list[_Kit], kind: str) -> None:
        """QA's decision: the first transit excursion is released, the first storage one rejected."""
        first = self._decisions[kind] == 0
        self._decisions[kind] += 1
        release = (kind == "transit") if first else self.rng.random() < (0.75 if kind == "transit" else 0.3)
        qa, at = self.actor["qa"], self.when()
        reason = (
            "Excursion covered by stability data (report STB-LTX-014); kits fit for use"
            if release
            else "Excursion outside the range supported by stability data; kits not fit for use"
        )
        self.wrote(
            self.ledger.handle(
                DecideQuarantine(
                    kit_ids=[k.id for k in kits],
                    release=release,
                    signature=sign(qa, Meaning.RELEASED if release else Meaning.REJECTED, at),
                    reason=reason,
                    occurred_at=at,
                ),
                qa,
            )
        )
        for kit in kits:
            kit.status = KitStatus.RECEIVED if release else KitStatus.DAMAGED
        if release:
            self._plan_use(kits)

    # --- at the site -----------------------------------------------------------------------------------

    def _dispense(self, kit: _Kit, subject: _Subject, last_visit: bool) -> None:
        """A visit: the subject gets the kit; the kit from their previous visit usually comes back."""
        if kit.status != KitStatus.RECEIVED:
            return  # quarantined or rejected since the visit was booked: the subject misses it
        site = kit.site
        assert site is not None
        if subject.kit is not None and self.rng.random() < 0.8:
            self._return(subject.kit, self.rng.choices(["used", "partially_used"], [0.8, 0.2])[0])
        self.wrote(
            self.ledger.handle(
                Dispense(
                    kit_id=kit.id,
                    site_id=_known(site.id),
                    subject=f"SUBJ-{subject.number:04d}",
                    occurred_at=self.when(),
                ),
                self.actor["site"],
            )
        )
        kit.status = KitStatus.DISPENSED
        self.dispensed += 1
        self.treated.add(subject.number)
        subject.kit = kit
        end_of_treatment = self.today + self.uniform(26, 30)
        if last_visit and end_of_treatment < self.days - 1 and self.rng.random() < 0.75:
            self.at(end_of_treatment, self._return, kit, "used")

    def _return(self, kit: _Kit, condition: str = "unused") -> None:
        if kit.status not in (KitStatus.DISPENSED, KitStatus.RECEIVED):
            return
        assert kit.site is not None
        self.wrote(
            self.ledger.handle(
                ReturnKit(
                    kit_id=kit.id,
                    site_id=_known(kit.site.id),
                    condition=condition,
                    occurred_at=self.when(),
                ),
                self.actor["site"],
            )
        )
        kit.status = KitStatus.RETURNED

    def _destruction_round(self, round_no: int) -> None:
        """Each site's returned and damaged kits: reconciled, authorised for destruction, destroyed."""
        for site in self.sites:
            if site.kits:
                self.at(self.today + self.uniform(0, 10), self._authorise_destruction, site, round_no)

    def _authorise_destruction(self, site: _Site, round_no: int) -> None:
        kits = [k for k in site.kits if k.status in (KitStatus.RETURNED, KitStatus.DAMAGED)]
        if round_no == 2 and kits and site.index % 4 == 0:  # some sites send theirs back instead
            self._send_back(site, kits)
            return
        for n, start in enumerate(range(0, len(kits), 200)):
            chunk = kits[start : start + 200]
            reason = f"Returned and damaged kits at site {site.number} reconciled by the monitor"
            self._authorise(chunk, reason)
            certificate = f"DC-{site.number}-{round_no}{n + 1:02d}"
            when = self.today + self.uniform(3, 8)
            self.at(when, self._destroy, _known(site.id), "site", chunk, certificate)

    def _authorise(self, kits: list[_Kit], reason: str) -> None:
        """QA's signed authorisation to destroy `kits`."""
        qa, at = self.actor["qa"], self.when()
        self.wrote(
            self.ledger.handle(
                AuthoriseDestruction(
                    kit_ids=[k.id for k in kits],
                    signature=sign(qa, Meaning.AUTHORISED_DESTRUCTION, at),
                    reason=reason,
                    occurred_at=at,
                ),
                qa,
            )
        )
        for kit in kits:
            kit.status = KitStatus.PENDING_DESTRUCTION

    def _send_back(self, site: _Site, kits: list[_Kit]) -> None:
        """The site sends its returned and damaged kits back to its region's depot (a routine return,
        outside any recall); the depot receives them a few days later and destroys them there."""
        depot = self.places[site.region]
        self.wrote(
            self.ledger.handle(
                ReturnToDepot(
                    site_id=_known(site.id),
                    depot_id=depot,
                    kit_ids=[k.id for k in kits],
                    reason=f"Returned and damaged kits of site {site.number}, reconciled by the monitor, "
                    "sent to the depot for destruction",
                    occurred_at=self.when(),
                ),
                self.actor["site"],
            )
        )
        for kit in kits:
            kit.status = KitStatus.IN_TRANSIT
        self.at(self.today + self.uniform(2, 6), self._receive_back, depot, kits, site.number)

    def _receive_back(self, depot: UUID, kits: list[_Kit], site_number: str) -> None:
        self.wrote(
            self.ledger.handle(
                ReceiveReturnedKits(depot_id=depot, kit_ids=[k.id for k in kits], occurred_at=self.when()),
                self.actor["depot"],
            )
        )
        self._authorise(kits, f"Kits returned by site {site_number}, received and counted at the depot")
        self.at(self.today + self.uniform(3, 8), self._destroy, depot, "depot", kits, f"DC-D-{site_number}")

    def _destroy(self, place: UUID, who: str, kits: list[_Kit], certificate: str) -> None:
        """`who` (the site or the depot) destroys the kits it holds at `place`, as QA authorised."""
        self.wrote(
            self.ledger.handle(
                DestroyKits(
                    location_id=place,
                    kit_ids=[k.id for k in kits],
                    certificate=certificate,
                    method="incineration by a licensed contractor",
                    occurred_at=self.when(),
                ),
                self.actor[who],
            )
        )
        for kit in kits:
            kit.status = KitStatus.DESTROYED

    def _open_recall(self, lot: _Lot) -> None:
        qa, at = self.actor["qa"], self.when()
        self.recall_number = f"RC-{at:%Y}-001"
        written = self.ledger.handle(
            OpenRecall(
                recall_number=self.recall_number,
                lot_ids=[_known(lot.id)],
                classification="class_ii",
                reason=f"{lot.number}: unknown impurity above the identification threshold in the "
                "supplier's retained sample; stop use and return all kits",
                scope="all_kits",
                signature=sign(qa, Meaning.APPROVED, at),
                occurred_at=at,
            ),
            qa,
        )
        self.wrote(written)
        self.recall_kits = int(written.facts["kits"])
        _RecallDrill(self, written.id).schedule()


class _RecallDrill:
    """The recall of the demo's last day: opened by QA, then worked through by the depots and most
    sites, and left in progress."""

    def __init__(self, program: _Program, recall_id: UUID) -> None:
        self.program = program
        self.ledger = program.ledger
        self.recall_id = recall_id

    def schedule(self) -> None:
        """Depots first (acknowledge, quarantine their stock), then two thirds of the sites, each
        acknowledging and reporting its list an hour later (the first leaves one kit it cannot find),
        then the depots receive the kits sent back from the first half of those sites."""
        p = self.program
        recall = self.ledger.recall_view(self.recall_id)
        depots = sorted(k for k, v in recall.places.items() if v["kind"] == LocationKind.DEPOT)
        sites = sorted(k for k, v in recall.places.items() if v["kind"] == LocationKind.CLINICAL_SITE)
        for n, depot in enumerate(depots):
            p.at(p.today + 0.05 + 0.01 * n, self._acknowledge, depot, "depot")
            p.at(p.today + 0.1 + 0.01 * n, self._report, depot, "depot", False)
        working = sites[: math.ceil(2 * len(sites) / 3)]
        for n, site in enumerate(working):
            at = p.today + 0.15 + 0.5 * n / max(1, len(working))
            p.at(at, self._acknowledge, site, "site")
            p.at(at + 0.04, self._report, site, "site", n == 0)
        p.at(p.today + 0.85, self._receive_returns, working[: math.ceil(len(working) / 2)])

    def _acknowledge(self, place: str, who: str) -> None:
        self.program.wrote(
            self.ledger.handle(
                AcknowledgeRecall(
                    recall_id=self.recall_id,
                    place_id=UUID(place),
                    occurred_at=self.program.when(),
                ),
                self.program.actor[who],
            )
        )

    def _report(self, place: str, who: str, one_not_found: bool) -> None:
        """The place's report from its own records, in one write."""
        recall = self.ledger.recall_view(self.recall_id)
        reports = [r for r in (self._report_of(k.kit_id, who) for k in recall.kits_at(place)) if r]
        if one_not_found:
            reports = reports[1:]
        if reports:
            self.program.wrote(
                self.ledger.handle(
                    ReportRecallKits(
                        recall_id=self.recall_id,
                        place_id=UUID(place),
                        reports=reports,
                        occurred_at=self.program.when(),
                    ),
                    self.program.actor[who],
                )
            )

    def _report_of(self, kit_id: UUID, who: str) -> KitReport | None:
        """What a place reports for a kit in its records' status (missing, in transit or destroyed
        kits are left for QA)."""
        kit = self.ledger.get(Kit, kit_id)
        if kit.status == KitStatus.DISPENSED:
            return KitReport(kit_id, KitOutcome.DISPENSED, kit.subject)
        if who == "site" and kit.status in (KitStatus.RECEIVED, KitStatus.RETURNED, KitStatus.DAMAGED):
            return KitReport(kit_id, KitOutcome.RETURNED)
        if kit.status in (
            KitStatus.AVAILABLE,
            KitStatus.RECEIVED,
            KitStatus.QUARANTINED,
            KitStatus.PENDING_DESTRUCTION,
        ):
            return KitReport(kit_id, KitOutcome.QUARANTINED)
        return None

    def _receive_returns(self, sites: list[str]) -> None:
        recall = self.ledger.recall_view(self.recall_id)
        by_depot: dict[UUID, list[UUID]] = {}
        for site in sites:
            for k in recall.kits_at(site):
                if recall.outcomes.get(k.kit_id, {}).get("outcome") == KitOutcome.RETURNED:
                    depot = _known(self.ledger.get(Kit, k.kit_id).destination_id)
                    by_depot.setdefault(depot, []).append(k.kit_id)
        for depot, kit_ids in sorted(by_depot.items()):
            self.program.wrote(
                self.ledger.handle(
                    ReceiveRecallReturns(
                        recall_id=self.recall_id,
                        depot_id=depot,
                        kit_ids=kit_ids,
                        occurred_at=self.program.when(),
                    ),
                    self.program.actor["depot"],
                )
            )


def _mg(milligrams: int) -> Quantity:
    return Quantity.of(Decimal(milligrams) / 1000, "g")


# --- the entry points -----------------------------------------------------------------------------


def generate(
    ledger: Ledger, seed: int = DEFAULT_SEED, scale: float = 1.0, progress: bool = True, recall: bool = True
) -> DemoSummary:
    """Write a demo program of size `scale` into the empty `ledger`, deterministically from `seed`;
    without `recall`, the program ends without the recall of its last day.

    The program spans the two years before today (UTC) and ends before yesterday. Raises
    `StoreNotEmpty` when the store already holds events, `ValueError` for a scale that is not
    positive.
    """
    sizes = Sizes.for_scale(scale)
    held, _ = ledger.chain.head()
    if held:
        raise StoreNotEmpty(held)
    began = time.perf_counter()
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=730)
    program = _Program(ledger, seed, sizes, start, 729)
    program.plan(recall)
    with ledger.late_entries_because("demo program: two years of a trial's history, entered at set-up"):
        program.run(progress)
    events, _ = ledger.chain.head()
    return DemoSummary(
        events=events,
        kits=program.kits,
        shipments=program.shipments + program.transfers,
        sites=len(program.sites),
        lots=len(program.lots) + program.batches,
        batches=program.batches,
        packaging_runs=len(program.runs),
        subjects=len(program.treated),
        dispensed=program.dispensed,
        seconds=time.perf_counter() - began,
        recall_number=program.recall_number,
        recall_kits=program.recall_kits,
        plant=program.places["plant"],
        depots=tuple(program.places[key] for key in (*program.regions, "backup")),
    )


def _scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"scale must be positive, got {text}")
    return value


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "demo",
        help="fill an empty store with a realistic demo clinical supply program",
        description="Simulate two years of one double-blind trial's supply chain up to yesterday and "
        "write it through the ledger: lots, formulation (one blend of two API lots), placebo, "
        "packaging into blinded kits, QA/QP/sponsor release, shipments, receipts with damaged and "
        "missing kits and temperature excursions, dispensing, returns and destruction, and on the "
        "last day a recall of one API lot, left in progress. The same "
        "--seed and --scale give the same events. It makes the store (or brings its schema up to "
        "this release, as `lotline db upgrade` does) first. The store must be empty: if it already holds "
        "events, nothing is written and the command exits 0 with a message (so start scripts may "
        "call it every time); use a fresh database for another demo.",
        epilog="Sizes: --scale 1 (default) is 12 activated sites, 8 batches, 1,500 kits, 60 "
        "shipments, about 8,200 events (seconds on SQLite); kits and shipments grow linearly, "
        "batches with the square root and sites with the 2/3 power of the scale, events about "
        "linearly: --scale 122 writes about 1,000,000 events.",
    )
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
    p.add_argument("--scale", type=_scale, default=1.0, help="program size, a positive number (default 1)")
    p.add_argument("--database-url", help="override LOTLINE_DATABASE_URL")
    p.add_argument(
        "--keys-dir",
        type=Path,
        help="override LOTLINE_KEYS_DIR (where the log's signing key is created if the store has none)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    url = args.database_url or Settings().database_url
    log_settings = Settings(
        database_url=url, **({"keys_dir": args.keys_dir} if getattr(args, "keys_dir", None) else {})
    )
    upgraded = upgrade_store(url, keys_dir=log_settings.keys_dir)
    if upgraded.before != upgraded.after:
        print(f"lotline demo: {upgraded.describe()}", file=sys.stderr)
    ledger = Ledger.open(url, keys_dir=log_settings.keys_dir)  # the writer key beside the log's key
    try:
        try:
            summary = generate(ledger, seed=args.seed, scale=args.scale, progress=not args.quiet)
            site = _first_active_site(ledger, summary.sites)
        except StoreNotEmpty as e:
            print(
                f"lotline demo: {redacted(url)} already holds {e.events:,} events; no demo data added "
                "(the demo writes only into an empty store); new tokens: lotline users token NAME",
                file=sys.stderr,
            )
            for line in _log_key_and_checkpoint(ledger, log_settings):
                print(line, file=sys.stderr)
            return 0
        user_lines = _demo_users(ledger, url, site, summary)
        checkpoint_lines = list(_log_key_and_checkpoint(ledger, log_settings))
    finally:
        ledger.close()
    for line in [*_report(summary, url), *checkpoint_lines, *user_lines]:
        print(line)
    return 0


def _log_key_and_checkpoint(ledger: Ledger, settings: Settings) -> Iterator[str]:
    """Create the log's signing key if the store has none, and sign a checkpoint of the head, so the demo
    starts with a verifiable log (the API's background task signs the later ones)."""
    try:
        log = Transparency.for_reader(ledger.chain, settings)
    except LedgerError as e:
        yield f"  no checkpoint signed: {e.message}"
        return
    try:
        key = log.keys.active()
        if key is None:
            key = log.keys.generate()
            yield f"  generated the log's signing key {key.key_id} in {settings.keys_dir}"
        checkpoint = log.checkpoint()
        yield f"  checkpoint {checkpoint.size} signed; the log's verifier key: {key.vkey}"
    except LedgerError as e:
        yield f"  no checkpoint signed: {e.message}"
    finally:
        log.close()


def _first_active_site(ledger: Ledger, sites: int) -> UUID:
    """The first activated site of the demo: the one its site user is bound to."""
    for index in range(sites):
        location = ledger.get(Location, Location.create_id(gln(100 + index)))
        if location.status == SiteStatus.ACTIVATED:
            return location.id
    raise RuntimeError("the demo activated no site")


def _demo_users(ledger: Ledger, url: str, site: UUID, summary: DemoSummary) -> list[str]:
    """One API user per demo actor, with a random password and a first token (lines to print once),
    each an account in the chain created by the demo's admin; the place-bound ones bound to where they
    work: the site user to the first site, the depot user to the depots, manufacturing to the plant and
    the depots (where kits are packaged)."""
    assert summary.plant is not None
    places = {
        Role.SITE: [site],
        Role.DEPOT: list(summary.depots),
        Role.MANUFACTURING: [summary.plant, *summary.depots],
    }
    by = DEMO_ACTORS["admin"]
    lines, events = [], 0
    identity = Identity.open(url, ledger=ledger)
    try:
        for principal, actor in DEMO_ACTORS.items():
            password = secrets.token_urlsafe(12)
            bound = places.get(actor.role, [])
            try:
                made = identity.add_user(
                    principal, name=actor.name, role=actor.role, places=bound, password=password,
                    by=by, reason="demo program: a person of the demo trial's staff",
                )
            except AlreadyExists:
                lines.append(f"    {principal:<20} already exists")
                continue
            issued = identity.issue(principal, label="demo", by=by, reason="demo program: their first token")
            events += len(made.events) + len(issued.recorded.events)
            lines.append(f"    {principal:<20} {actor.role:<20} token {issued.secret}  password {password}")
    finally:
        identity.close()
    return [
        f"  API users ({events} events: each user's account in the chain; tokens and passwords are shown "
        "only now, `lotline users token NAME --reason WHY` issues more):",
        *lines,
        f"  the site user is bound to site {site}",
    ]


def _report(s: DemoSummary, url: str) -> Iterator[str]:
    yield (
        f"wrote {s.events:,} events in {s.seconds:.1f} s ({s.events_per_second:,.0f} events/s) "
        f"to {redacted(url)}"
    )
    yield (
        f"  {s.sites} sites, {s.lots} lots, {s.batches} batches, {s.packaging_runs} packaging runs, "
        f"{s.kits:,} kits, {s.shipments:,} shipments, {s.subjects:,} subjects, "
        f"{s.dispensed:,} kits dispensed"
    )
    if s.recall_number:
        yield (
            f"  recall {s.recall_number} in progress, {s.recall_kits:,} kits affected: "
            f"GET /recalls/{Recall.create_id(s.recall_number)}/status"
        )
    yield "  demo users: " + ", ".join(f"{a.principal} ({a.role})" for a in DEMO_ACTORS.values())
