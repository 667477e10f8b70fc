"""Benchmark of the ledger's append rate against bare `eventsourcing`, side by side in one run (issue 12).

    python -m scripts.bench_append --database-url sqlite:////tmp/bench/x.db --rounds 20 --kits-per-batch 100
    python -m scripts.bench_append --database-url postgresql://lotline:lotline@127.0.0.1:55432/postgres

Makes its own fresh stores and removes them at the end: on SQLite two files in a new temp dir beside
the file the URL names (the file itself is never opened); on PostgreSQL two databases
`bench_append_ledger_<hex>` and `bench_append_base_<hex>` on the URL's server (the URL's database is
only connected to, to create and drop them; the role needs CREATEDB). Never point it at a store you
care about: it writes nothing there, but it is a benchmark.

The ledger side, through `Ledger.handle` (command objects built before the clock starts):
- setup (not timed): a trial, a depot, an activated clinical site, two released drug-product lots (a
  new pair every 10 runs, on both sides, so a lot's history stays short at any store size).
- package: `Package` of K kits in two arms: 1 PackagingRun + 2 Lot events + K Kit events = K + 3
  events in one commit; it loads the trial and both lots, peeks the depot.
- (not timed) QA disposition, QP certification, sponsor release of the run.
- ship: `Ship` of those K kits: loads the K kits (`load_many`, ~400 streams per query), peeks the site,
  trial, run and the lots upstream; writes 1 Shipment + K Kit events = K + 1 events in one commit.
- receipt: `ConfirmReceipt` of the shipment, every kit received: loads the shipment and the K kits,
  writes 1 Shipment + K Kit events = K + 1 events in one commit.
Each commit also extends the hash chain (one chain row per event), checks what the command read is
unchanged, and signs the new head with the writer key: that is what the ledger costs over the library.

The baseline, bare `eventsourcing` (the installed version): an `eventsourcing.application.Application`
named "Baseline" with one trivial aggregate class `Item` (a `Created` and a `Moved` event, each with one
string field padded so that a stored event's state is as long, on average, as the ledger's stored
events of the same shape, measured on the warm-up round), on the same kind of store: the library's
own SQLite persistence module (same lock timeout) or its PostgreSQL module, tables made by the library.
- package: `repository.get` of 2 "lot" items, one `Moved` on each, K + 1 new items (run and kits);
  one `save(...)` of K + 3 events.
- ship: loads the K kit items, a `Moved` on each and 1 new "shipment" item; one `save` of K + 1 events.
- receipt: `repository.get` of the shipment, loads the K kits, a `Moved` on each; one `save` of K + 1.
"Loads" is, by default (`--bare-reads bulk`), what the ledger's `load_many` does: one
`SELECT ... WHERE originator_id IN (...)` per 400 streams on the library's own connection pool, each
stored event turned back into a domain event by the library's mapper and applied; the library itself
has no multi-stream read, so `--bare-reads each` uses `repository.get` per kit instead (K reads: slower
than the ledger, which then measures the ledger's bulk read, not its append).
The baseline checks nothing, keeps no chain and signs nothing; it does not read the trial, places or
upstream lots the ledger's rules read. Its events are as long as the ledger's but hold one string,
where the ledger's hold typed values (UUIDs, dates, decimals, nested dicts), which the library's JSON
transcoder decodes and encodes at a higher cost per byte: that is part of what is measured.
The ledger's store is made by `lotline db upgrade`'s code (chain and signature tables, append-only
triggers) and opened with `Ledger.open`, i.e. its chained recorders and pool settings.

Each round runs the pairs interleaved (ledger package, bare package, ledger ship, bare ship, ledger
receipt, bare receipt; the next round bare first), so machine load hits both alike. Per shape it
prints events/s on each side (events over the summed time of that shape's commands), their ratio
(ledger / baseline; the issue's target is >= 0.8), and the p50/p95 milliseconds per command. With
`--sizes`, both stores are then grown (untimed, same shapes in batches of `--grow-batch` kits) to each
ledger store size in events, and the rounds are measured again there.
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder

from ledger.application import Ledger
from ledger.commands import (
    ActivateSite,
    Arm,
    CertifyPackaging,
    ConfirmReceipt,
    DisposePackaging,
    Package,
    ReceiveLot,
    RegisterLocation,
    RegisterTrial,
    ReleaseLot,
    Ship,
    SponsorRelease,
)
from ledger.db import BUSY_TIMEOUT_SECONDS, sqlite_path
from ledger.domain import Kit
from ledger.gs1 import with_check_digit
from ledger.values import Meaning, Quantity, now, sign
from scripts.bench_actors import ADMIN, DEPOT, MFG, MFG2, QA, QP, SITE
from scripts.db import upgrade_store

SHAPES = ("package", "ship", "receipt")
PG_PREFIX = "bench_append_"


KIT_GTIN = with_check_digit("0490000000040")
DP_GTIN = with_check_digit("0490000000030")
PLACEBO_GTIN = with_check_digit("0490000000050")
LOT_RUNS = 10
"""Packaging runs per pair of lots (a lot's stream grows by one event per run that consumes it)."""


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _machine(args.database_url)
    with _stores(args.database_url) as (ledger_url, base_url, size_of):
        keys = Path(args.keys_dir) if args.keys_dir else Path(tempfile.mkdtemp(prefix="bench_append_keys_"))
        try:
            upgrade_store(ledger_url, keys)
            ledger = Ledger.open(ledger_url, keys_dir=keys)
            base = Baseline(env=_baseline_env(base_url))
            base.bulk_reads = args.bare_reads == "bulk"
            try:
                bench = Bench(ledger, base, args.kits_per_batch)
                bench.setup()
                bench.round(args.kits_per_batch)  # warm-up; calibrates the baseline's payloads
                _line("payload per stored event (ledger, bytes)",
                      "  ".join(f"{s} {bench.payload[s]}" for s in SHAPES))
                results = []
                for size in [0, *args.sizes]:
                    if size:
                        bench.grow(size, args.grow_batch)
                    stored = ledger.chain.head()[0]
                    figures = bench.measure(args.rounds)
                    results.append((stored, figures))
                    _table(stored, figures, f"ledger {size_of(ledger_url)}, bare {size_of(base_url)}")
                _summary(results)
            finally:
                ledger.close()
                base.close()
        finally:
            if not args.keys_dir:
                shutil.rmtree(keys, ignore_errors=True)
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench_append",
        description=__doc__.split("\n\n")[0],
        epilog="Makes and removes its own stores (see the module docstring for what each side does).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--database-url", required=True,
                   help="sqlite:///DIR/any.db (stores made in a temp dir in DIR) or postgresql://... "
                   "(a server where the role may CREATE DATABASE; the named database is only connected to)")
    p.add_argument("--rounds", type=int, default=20, help="measured rounds per store size (default 20)")
    p.add_argument("--kits-per-batch", type=int, default=100, help="kits per command, K (default 100)")
    p.add_argument("--keys-dir", help="writer keys directory (default: a new temp dir, removed after)")
    p.add_argument("--sizes", type=_sizes, default=[],
                   help="then grow both stores to these ledger sizes in events and measure again, "
                   "e.g. 100000,300000 (default: measure on the empty stores only)")
    p.add_argument("--bare-reads", choices=("bulk", "each"), default="bulk",
                   help="how the baseline loads the K kits: one query per 400 streams like the ledger "
                   "(default), or one repository.get each (the library's only API for it)")
    p.add_argument("--grow-batch", type=int, default=1000,
                   help="kits per command while growing (default 1000)")
    return p


def _sizes(text: str) -> list[int]:
    sizes = [int(s) for s in text.split(",") if s.strip()]
    if sizes != sorted(sizes) or any(s <= 0 for s in sizes):
        raise argparse.ArgumentTypeError("sizes are positive and increasing, e.g. 100000,300000")
    return sizes


def _line(what: str, figure: str) -> None:
    print(f"{what:<44} {figure}", flush=True)


# --- the machine and the stores ----------------------------------------------------------------------


def _machine(url: str) -> None:
    uptime = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    mem = ""
    if Path("/proc/meminfo").exists():
        kb = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
        mem = f", {kb / 1024 / 1024:.1f} GiB RAM"
    _line("machine", f"{platform.machine()}, {os.cpu_count()} cores{mem}, {platform.platform()}")
    _line("uptime", uptime)
    _line("python / eventsourcing", f"{platform.python_version()} / {version('eventsourcing')}")
    _line("store", url.split("://", 1)[0] + "://" + (urlsplit(url).hostname or urlsplit(url).path))


@contextmanager
def _stores(url: str) -> Iterator[tuple[str, str, Callable[[str], str]]]:
    """(ledger store URL, baseline store URL, size on disk of a store), made fresh, removed after."""
    scheme = urlsplit(url).scheme.split("+", 1)[0]
    if scheme == "sqlite":
        where = sqlite_path(url)
        assert where is not None
        parent = where.parent if str(where.parent) else Path(".")
        tmp = Path(tempfile.mkdtemp(prefix="bench_append_", dir=parent))

        def sqlite_size(store_url: str) -> str:
            path = sqlite_path(store_url)
            assert path is not None
            total = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
            return f"{total / 2**20:.0f} MiB"

        try:
            yield f"sqlite:///{tmp}/ledger.db", f"sqlite:///{tmp}/baseline.db", sqlite_size
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    if scheme not in ("postgresql", "postgres"):
        raise SystemExit(f"unsupported URL scheme {scheme!r}: sqlite:/// or postgresql://")
    import psycopg
    from psycopg import sql

    token = secrets.token_hex(4)
    names = [f"{PG_PREFIX}ledger_{token}", f"{PG_PREFIX}base_{token}"]
    parts = urlsplit(url)

    def connect() -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=parts.hostname, port=parts.port or 5432, user=unquote(parts.username or ""),
            password=unquote(parts.password or ""), dbname=unquote(parts.path.strip("/")), autocommit=True,
        )

    def with_db(name: str) -> str:
        return parts._replace(path=f"/{name}").geturl()

    def pg_size(store_url: str) -> str:
        with connect() as conn:
            name = urlsplit(store_url).path.strip("/")
            row = conn.execute("SELECT pg_database_size(%s)", (name,)).fetchone()
        return f"{row[0] / 2**20:.0f} MiB" if row else "?"

    with connect() as conn:
        for name in names:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_db(names[0]), with_db(names[1]), pg_size
    finally:
        with connect() as conn:
            for name in names:
                assert name.startswith(PG_PREFIX)
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _baseline_env(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    if parts.scheme.startswith("sqlite"):
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(sqlite_path(url)),
            "SQLITE_LOCK_TIMEOUT": str(BUSY_TIMEOUT_SECONDS),
        }
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": unquote(parts.path.strip("/")),
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "POSTGRES_LOCK_TIMEOUT": str(BUSY_TIMEOUT_SECONDS),
    }


# --- the baseline ------------------------------------------------------------------------------------


class Item(Aggregate):
    """The baseline's one aggregate: a kind and a note (the padding that sizes its events)."""

    @event("Created")
    def __init__(self, kind: str, note: str) -> None:
        self.kind = kind
        self.note = note

    @event("Moved")
    def move(self, note: str) -> None:
        self.note = note


class Baseline(Application[UUID]):
    """Bare eventsourcing: load, change and save `Item`s, nothing else."""

    name = "Baseline"

    def package(self, lot_ids: Sequence[UUID], kits: int, note: str) -> tuple[UUID, list[UUID], int]:
        lots: list[Item] = [self.repository.get(i) for i in lot_ids]
        for lot in lots:
            lot.move(note)
        run = Item("run", note)
        made = [Item("kit", note) for _ in range(kits)]
        self.save(run, *lots, *made)
        return run.id, [k.id for k in made], kits + 1 + len(lots)

    bulk_reads = True
    """Load many items with one query per 400 streams, as the ledger does; else `repository.get` each."""

    def load(self, ids: Sequence[UUID]) -> list[Item]:
        """The items `ids`, in order: read in bulk (one SELECT ... IN per 400 streams on the library's
        own connection, replayed with the library's mapper) or one `repository.get` each."""
        if not self.bulk_reads:
            return [self.repository.get(i) for i in ids]
        found: dict[UUID, Any] = {}
        for start in range(0, len(ids), 400):
            for e in self._select_streams(list(ids[start : start + 400])):
                ident = UUID(str(e.originator_id))
                found[ident] = self.mapper.to_domain_event(e).mutate(found.get(ident))  # type: ignore[attr-defined]
        return [found[i] for i in ids]

    def _select_streams(self, streams: list[UUID]) -> list[StoredEvent]:
        recorder: Any = self.recorder
        table = recorder.events_table_name
        if isinstance(recorder, SQLiteApplicationRecorder):
            marks = ", ".join("?" for _ in streams)
            with recorder.datastore.transaction(commit=False) as c:
                c.execute(f"SELECT originator_id, originator_version, topic, state FROM {table} "
                          f"WHERE originator_id IN ({marks}) ORDER BY originator_id, originator_version",
                          [s.hex for s in streams])
                rows = [(UUID(r[0]), r[1], r[2], bytes(r[3])) for r in c.fetchall()]
        else:
            from psycopg.sql import SQL, Identifier

            query = SQL("SELECT originator_id, originator_version, topic, state FROM {}.{} "
                        "WHERE originator_id = ANY(%s) ORDER BY originator_id, originator_version").format(
                Identifier(recorder.datastore.schema), Identifier(table))
            with recorder.datastore.get_connection() as conn, conn.cursor() as curs:
                curs.execute(query, (streams,))
                rows = [(r["originator_id"], r["originator_version"], r["topic"], bytes(r["state"]))
                        for r in curs.fetchall()]
        return [StoredEvent(originator_id=o, originator_version=v, topic=t, state=b) for o, v, t, b in rows]

    def ship(self, kit_ids: Sequence[UUID], note: str) -> tuple[UUID, int]:
        kits = self.load(kit_ids)
        for kit in kits:
            kit.move(note)
        shipment = Item("shipment", note)
        self.save(shipment, *kits)
        return shipment.id, len(kits) + 1

    def receive(self, shipment_id: UUID, kit_ids: Sequence[UUID], note: str) -> int:
        shipment: Item = self.repository.get(shipment_id)
        kits = self.load(kit_ids)
        for agg in (shipment, *kits):
            agg.move(note)
        self.save(shipment, *kits)
        return len(kits) + 1

    def stored_size(self, note: str) -> int:
        """Bytes of a stored `Moved` event's state with this note (what a padded event weighs)."""
        item = Item("kit", note)
        item.move(note)
        return len(self.mapper.to_stored_event(item.collect_events()[-1]).state)


# --- the bench -----------------------------------------------------------------------------------------


@dataclass
class Figures:
    """Per shape and side: seconds per command and events per command."""

    seconds: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    events: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, shape: str, side: str, seconds: float, events: int) -> None:
        self.seconds.setdefault((shape, side), []).append(seconds)
        self.events[(shape, side)] = self.events.get((shape, side), 0) + events

    def rate(self, shape: str, side: str) -> float:
        return self.events[(shape, side)] / sum(self.seconds[(shape, side)])

    def ms(self, shape: str, side: str) -> tuple[float, float]:
        samples = [s * 1000 for s in self.seconds[(shape, side)]]
        if len(samples) < 2:
            return samples[0], samples[0]
        return statistics.median(samples), statistics.quantiles(samples, n=20, method="inclusive")[18]


class Bench:
    """One trial's supply chain on the ledger and its bare counterpart, driven round by round."""

    def __init__(self, ledger: Ledger, base: Baseline, kits: int) -> None:
        self.ledger = ledger
        self.base = base
        self.kits = kits
        self.serial = 0
        self.payload = dict.fromkeys(SHAPES, 0)
        self.notes = dict.fromkeys(SHAPES, "")

    def setup(self) -> None:
        """Reference data and two big released drug-product lots on the ledger; two lot items on the
        baseline."""
        L = self.ledger
        self.trial = L.handle(RegisterTrial(code="BENCH-1", title="Append benchmark", sponsor="Bench",
                                            countries=["DE"], do_not_ship_days=30, do_not_dispense_days=7),
                              ADMIN).id
        self.depot = L.handle(RegisterLocation(gln=with_check_digit("490000000002"), kind="depot",
                                               name="Bench depot", country="DE"), ADMIN).id
        self.site = L.handle(RegisterLocation(gln=with_check_digit("490000000003"), kind="clinical_site",
                                              name="Bench site", country="DE", trial_id=self.trial,
                                              site_number="001"), ADMIN).id
        L.handle(ActivateSite(site_id=self.site), ADMIN)
        self.packaged = 0
        self._new_lots()

    def _new_lots(self) -> None:
        """Two new released drug-product lots on the ledger, two new lot items on the baseline: each
        pair fills `LOT_RUNS` packaging runs, so loading a lot costs the same at every store size."""
        n = self.packaged // LOT_RUNS
        self.lots = [self._lot(DP_GTIN, f"DP-BENCH-{n}"), self._lot(PLACEBO_GTIN, f"PLC-BENCH-{n}")]
        self.base_lots = [Item("lot", "") for _ in self.lots]
        self.base.save(*self.base_lots)

    def _lot(self, gtin: str, number: str) -> UUID:
        today = now().date()
        lot: UUID = self.ledger.handle(
            ReceiveLot(gtin=gtin, lot_number=number, kind="drug_product", material="tablets",
                       supplier="Bench CMO",
                       quantity=Quantity.of(100_000_000, "unit"), location_id=self.depot,
                       manufactured_on=today - timedelta(days=30), expires_on=today + timedelta(days=1000)),
            MFG,
        ).id
        released = sign(QA, Meaning.RELEASED)
        self.ledger.handle(ReleaseLot(lot_id=lot, signature=released, results_ref="COA"), QA)
        return lot

    # One command of each shape on each side ------------------------------------------------------------

    def _package_command(self, kits: int) -> tuple[Package, list[UUID]]:
        if self.packaged and self.packaged % LOT_RUNS == 0:
            self._new_lots()
        self.packaged += 1
        self.serial += 1
        numbers = [f"B{self.serial:06d}-{i:05d}" for i in range(kits)]
        half = max(1, kits // 2)
        kit_list = [(n, "A" if i < half else "P") for i, n in enumerate(numbers)]
        arms = [Arm(treatment="A", dp_lot_id=self.lots[0], units_per_kit=1, units_issued=half)]
        if kits > half:
            arms.append(Arm(treatment="P", dp_lot_id=self.lots[1], units_per_kit=1, units_issued=kits - half))
        command = Package(batch_number=f"PB-{self.serial:06d}", trial_id=self.trial, location_id=self.depot,
                          kit_gtin=KIT_GTIN, label_version="v1", arms=arms, kit_list=kit_list,
                          checked_by=MFG2)
        return command, [Kit.create_id(KIT_GTIN, n) for n in numbers]

    def _release(self, run_id: UUID) -> None:
        L = self.ledger
        L.handle(DisposePackaging(run_id=run_id, released=True, signature=sign(QA, Meaning.RELEASED)), QA)
        L.handle(CertifyPackaging(run_id=run_id, signature=sign(QP, Meaning.CERTIFIED)), QP)
        released = sign(QA, Meaning.SPONSOR_RELEASED)
        L.handle(SponsorRelease(run_id=run_id, country="DE", signature=released), QA)

    def _ship_command(self, kit_ids: list[UUID]) -> Ship:
        return Ship(shipment_number=f"SH-{self.serial:06d}",
                    sscc=with_check_digit(f"349000000{self.serial:08d}"), from_id=self.depot,
                    to_id=self.site, kit_ids=kit_ids, min_celsius=Decimal(2), max_celsius=Decimal(8))

    def _receipt_command(self, shipment_id: UUID, numbers: list[str]) -> ConfirmReceipt:
        return ConfirmReceipt(shipment_id=shipment_id, site_id=self.site,
                              outcomes=dict.fromkeys(numbers, "received"),
                              logger_min=Decimal(3), logger_max=Decimal(7))

    def _timed(self, call: Callable[[], Any]) -> tuple[float, Any]:
        began = time.perf_counter()
        result = call()
        return time.perf_counter() - began, result

    def _ledger_steps(self, kits: int) -> Iterator[tuple[str, float, int]]:
        """Package, ship and receive `kits` kits on the ledger: (shape, seconds, events) after each."""
        L = self.ledger
        package, kit_ids = self._package_command(kits)
        seconds, recorded = self._timed(lambda: L.handle(package, MFG))
        self._calibrate("package", recorded)
        yield "package", seconds, len(recorded.events)
        self._release(recorded.id)
        ship = self._ship_command(kit_ids)
        seconds, recorded = self._timed(lambda: L.handle(ship, DEPOT))
        self._calibrate("ship", recorded)
        yield "ship", seconds, len(recorded.events)
        receipt = self._receipt_command(recorded.id, [e.kit_number for e in package.kit_list])
        seconds, recorded = self._timed(lambda: L.handle(receipt, SITE))
        self._calibrate("receipt", recorded)
        yield "receipt", seconds, len(recorded.events)

    def _base_steps(self, kits: int) -> Iterator[tuple[str, float, int]]:
        """The same three steps on the baseline."""
        B, notes, lots = self.base, self.notes, [lot.id for lot in self.base_lots]
        seconds, (_, kit_ids, events) = self._timed(lambda: B.package(lots, kits, notes["package"]))
        yield "package", seconds, events
        seconds, (shipment_id, events) = self._timed(lambda: B.ship(kit_ids, notes["ship"]))
        yield "ship", seconds, events
        seconds, events = self._timed(lambda: B.receive(shipment_id, kit_ids, notes["receipt"]))
        yield "receipt", seconds, events

    def _calibrate(self, shape: str, recorded: Any) -> None:
        """On the warm-up round: the mean stored size of the shape's ledger events, and the baseline
        note that makes its events as heavy."""
        if self.payload[shape]:
            return
        wanted = {(e.stream, e.version) for e in recorded.events}
        stored = self.ledger.chain.select_streams(list({s for s, _ in wanted}))
        sizes = [len(e.state) for s, events in stored.items() for e in events
                 if (s, e.originator_version) in wanted]
        self.payload[shape] = round(sum(sizes) / len(sizes))
        pad = max(0, self.payload[shape] - self.base.stored_size(""))
        self.notes[shape] = "x" * pad

    # Rounds -----------------------------------------------------------------------------------------

    def round(self, kits: int, figures: Figures | None = None, bare_first: bool = False) -> None:
        """One round, interleaved: ledger package, bare package, ledger ship, bare ship, ledger receipt,
        bare receipt (bare first when asked), so a change in machine load hits both sides alike."""
        ledger, bare = self._ledger_steps(kits), self._base_steps(kits)
        pairs = zip(bare, ledger, strict=True) if bare_first else zip(ledger, bare, strict=True)
        for first, second in pairs:
            if figures is not None:
                sides = ("bare", "ledger") if bare_first else ("ledger", "bare")
                for side, (shape, seconds, events) in zip(sides, (first, second), strict=True):
                    figures.add(shape, side, seconds, events)

    def measure(self, rounds: int) -> Figures:
        """`rounds` rounds of K kits, every other one with the baseline first."""
        figures = Figures()
        for r in range(rounds):
            self.round(self.kits, figures, bare_first=r % 2 == 1)
        return figures

    def grow(self, size: int, batch: int) -> None:
        """Grow both stores (same shapes, `batch` kits per command, untimed) to `size` ledger events."""
        began = time.perf_counter()
        start = self.ledger.chain.head()[0]
        while self.ledger.chain.head()[0] < size:
            self.round(batch)
        stored = self.ledger.chain.head()[0]
        _line(f"grew both stores to {stored:,} ledger events",
              f"{stored - start:,} ledger events in {time.perf_counter() - began:.0f} s")


def _table(stored: int, f: Figures, disk: str) -> None:
    print(f"\nstore size: {stored:,} ledger events (on disk: {disk})", flush=True)
    print(f"{'shape':<9}{'ev/cmd':>7}{'ledger ev/s':>13}{'bare ev/s':>11}{'ratio':>7}"
          f"{'ledger p50/p95 ms':>20}{'bare p50/p95 ms':>18}", flush=True)
    for shape in SHAPES:
        lp50, lp95 = f.ms(shape, "ledger")
        bp50, bp95 = f.ms(shape, "bare")
        per = f.events[(shape, "ledger")] // len(f.seconds[(shape, "ledger")])
        ratio = f.rate(shape, "ledger") / f.rate(shape, "bare")
        print(f"{shape:<9}{per:>7}{f.rate(shape, 'ledger'):>13,.0f}{f.rate(shape, 'bare'):>11,.0f}"
              f"{ratio:>7.2f}{f'{lp50:.1f} / {lp95:.1f}':>20}{f'{bp50:.1f} / {bp95:.1f}':>18}", flush=True)


def _summary(results: list[tuple[int, Figures]]) -> None:
    if len(results) < 2:
        return
    first = results[0][1]
    print("\nappend rate as the store grows, per shape: ledger ev/s (change from the first size), the same"
          "\nchange on bare eventsourcing (machine load moves both), ratio ledger/bare", flush=True)

    def change(f: Figures, shape: str, side: str) -> str:
        return f"{f.rate(shape, side) / first.rate(shape, side) - 1:+.0%}"

    for stored, f in results:
        cells = [f"{s} {f.rate(s, 'ledger'):,.0f} ({change(f, s, 'ledger')}, bare {change(f, s, 'bare')}) "
                 f"{f.rate(s, 'ledger') / f.rate(s, 'bare'):.2f}" for s in SHAPES]
        print(f"{stored:>10,}  " + "  ".join(cells), flush=True)


if __name__ == "__main__":
    sys.exit(main())
