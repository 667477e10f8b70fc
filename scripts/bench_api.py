"""Load benchmark of the HTTP API: concurrent site receipt confirmations, with a few trace queries,
against `lotline serve` (uvicorn) on loopback; reports requests/s and p50/p99 latency per kind.

    python -m scripts.bench_api --database-url sqlite:////tmp/bench.db
    python -m scripts.bench_api --database-url postgresql://lotline:x@127.0.0.1:55432/bench_api

The store must be empty (it is filled here, through the ledger: a released program with one
shipment in transit per planned confirmation). Bounded: every request is sent once at most and the
run stops after `--max-seconds`; the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import httpx

from ledger.application import Ledger
from ledger.commands import (
    ActivateSite,
    Arm,
    CertifyPackaging,
    DisposePackaging,
    Formulate,
    OutputLot,
    Package,
    ReceiveLot,
    RegisterLocation,
    RegisterTrial,
    ReleaseLot,
    Ship,
    SponsorRelease,
)
from ledger.domain import Kit
from ledger.gs1 import with_check_digit
from ledger.identity import Identity
from ledger.values import Actor, Meaning, Quantity, Role, sign
from scripts.db import upgrade_store

ADMIN = Actor("bench-admin", Role.ADMIN, "Bench Admin")
MFG = Actor("bench-mfg", Role.MANUFACTURING, "Bench Maker")
MFG2 = Actor("bench-mfg2", Role.MANUFACTURING, "Bench Checker")
QA = Actor("bench-qa", Role.QA, "Bench QA")
QP = Actor("bench-qp", Role.QP, "Bench QP")
DEPOT = Actor("bench-depot", Role.DEPOT, "Bench Depot")
KIT_GTIN = with_check_digit("0400000000404")


@dataclass
class Plan:
    """What the store holds before the load: sites, their shipments in transit, and the API lot."""

    api_lot: UUID
    sites: list[UUID]
    shipments: list[tuple[UUID, UUID, list[str]]]  # (site, shipment, kit numbers)
    events: int = 0


@dataclass
class Timings:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    statuses: dict[str, dict[int, int]] = field(default_factory=dict)

    def add(self, kind: str, seconds: float, status: int) -> None:
        self.latencies.setdefault(kind, []).append(seconds)
        by_status = self.statuses.setdefault(kind, {})
        by_status[status] = by_status.get(status, 0) + 1


def build(ledger: Ledger, sites: int, shipments: int, kits_per_shipment: int) -> Plan:
    """A trial, a plant, a depot, `sites` activated sites, one released run, and the shipments."""
    today = date.today()
    trial = ledger.handle(
        RegisterTrial(
            code="BENCH-1",
            title="bench",
            sponsor="bench",
            countries=["DE"],
            do_not_ship_days=30,
            do_not_dispense_days=7,
        ),
        ADMIN,
    ).id
    plant = ledger.handle(
        RegisterLocation(
            gln=with_check_digit("400000000001"),
            kind="manufacturing_site",
            name="Plant",
            country="DE",
        ),
        ADMIN,
    ).id
    depot = ledger.handle(
        RegisterLocation(
            gln=with_check_digit("400000000002"),
            kind="depot",
            name="Depot",
            country="DE",
        ),
        ADMIN,
    ).id
    site_ids = []
    for n in range(sites):
        site = ledger.handle(
            RegisterLocation(
                gln=with_check_digit(f"4000000010{n:02d}"),
                kind="clinical_site",
                name=f"Site {n + 1}",
                country="DE",
                trial_id=trial,
                site_number=f"{n + 1}",
            ),
            ADMIN,
        ).id
        ledger.handle(ActivateSite(site_id=site), ADMIN)
        site_ids.append(site)

    def lot(number: str, kind: str, amount: str, unit: str, item: str) -> UUID:
        lot_id = ledger.handle(
            ReceiveLot(
                gtin=with_check_digit(item),
                lot_number=number,
                kind=kind,
                material=number,
                quantity=Quantity.of(amount, unit),
                location_id=plant,
                manufactured_on=today - timedelta(days=30),
                expires_on=today + timedelta(days=900),
                supplier="Supplier",
            ),
            MFG,
        ).id
        ledger.handle(
            ReleaseLot(lot_id=lot_id, signature=sign(QA, Meaning.RELEASED), results_ref=f"COA-{number}"), QA
        )
        return lot_id

    kits = shipments * kits_per_shipment
    api_lot = lot("API-1", "api", "5", "kg", "0400000000101")
    excipient = lot("EXC-1", "excipient", "50", "kg", "0400000000202")
    _, dp = ledger.handle(
        Formulate(
            batch_number="B-1",
            product="bench",
            location_id=plant,
            inputs=[(api_lot, Quantity.of("1", "kg")), (excipient, Quantity.of("10", "kg"))],
            output=OutputLot(
                gtin=with_check_digit("0400000000303"),
                lot_number="DP-1",
                material="tablets",
                expires_on=today + timedelta(days=800),
            ),
            theoretical_yield=Quantity.of(kits, "unit"),
            actual_yield=Quantity.of(kits, "unit"),
            equipment=["MIX"],
            checked_by=MFG2,
        ),
        MFG,
    ).created
    ledger.handle(ReleaseLot(lot_id=dp, signature=sign(QA, Meaning.RELEASED), results_ref="QC-1"), QA)
    numbers = [f"K{i:06d}" for i in range(1, kits + 1)]
    run = ledger.handle(
        Package(
            batch_number="P-1",
            trial_id=trial,
            location_id=depot,
            kit_gtin=KIT_GTIN,
            label_version="v1",
            arms=[Arm(treatment="A", dp_lot_id=dp, units_per_kit=1, units_issued=kits)],
            kit_list=[(n, "A") for n in numbers],
            checked_by=MFG2,
        ),
        MFG,
    ).id
    ledger.handle(DisposePackaging(run_id=run, signature=sign(QA, Meaning.RELEASED), released=True), QA)
    ledger.handle(CertifyPackaging(run_id=run, signature=sign(QP, Meaning.CERTIFIED)), QP)
    ledger.handle(SponsorRelease(run_id=run, country="DE", signature=sign(QA, Meaning.SPONSOR_RELEASED)), QA)
    planned = []
    for s in range(shipments):
        chunk = numbers[s * kits_per_shipment : (s + 1) * kits_per_shipment]
        site = site_ids[s % sites]
        shipment = ledger.handle(
            Ship(
                shipment_number=f"S-{s + 1}",
                sscc=with_check_digit(f"3400000000{s:07d}"),
                from_id=depot,
                to_id=site,
                kit_ids=[Kit.create_id(KIT_GTIN, n) for n in chunk],
                min_celsius=Decimal(2),
                max_celsius=Decimal(8),
            ),
            DEPOT,
        ).id
        planned.append((site, shipment, chunk))
    return Plan(api_lot, site_ids, planned, ledger.chain.head()[0])


def users(identity: Identity, plan: Plan) -> dict[str, str]:
    """One site user per site and a recall investigator; their tokens."""
    tokens = {}
    for n, site in enumerate(plan.sites):
        identity.add_user(f"site{n}", name=f"Site User {n}", role=Role.SITE, sites=[site])
        tokens[str(site)] = identity.issue_token(f"site{n}")
    identity.add_user("investigator", name="Rita Recall", role=Role.RECALL_INVESTIGATOR)
    tokens["investigator"] = identity.issue_token("investigator")
    return tokens


async def load(
    base: str, plan: Plan, tokens: dict[str, str], concurrency: int, queries: int, max_seconds: float
) -> tuple[Timings, float]:
    """Confirm every shipment (one request each, Idempotency-Key set) and run `queries` trace queries."""
    timings = Timings()
    jobs: list[tuple[str, str, str, dict[str, object] | None, dict[str, str]]] = []
    for site, shipment, numbers in plan.shipments:
        body: dict[str, object] = {
            "outcomes": dict.fromkeys(numbers, "received"),
            "logger_min": "3",
            "logger_max": "7",
        }
        jobs.append(
            (
                "receipt",
                "POST",
                f"/sites/{site}/shipments/{shipment}/receipt",
                body,
                {"Authorization": f"Bearer {tokens[str(site)]}", "Idempotency-Key": f"bench-{shipment}"},
            )
        )
    spread = max(1, len(jobs) // max(1, queries))
    investigator = {"Authorization": f"Bearer {tokens['investigator']}"}
    for q in range(queries):
        path = (
            f"/recalls/impact?lot_id={plan.api_lot}"
            if q % 2
            else f"/trace/lots/{plan.api_lot}/forward/kits?limit=100&offset={q * 7 % 500}"
        )
        jobs.insert(min(len(jobs), q * spread), ("trace", "GET", path, None, investigator))
    queue: asyncio.Queue[tuple[str, str, str, dict[str, object] | None, dict[str, str]]] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    deadline = time.monotonic() + max_seconds

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty() and time.monotonic() < deadline:
            kind, method, path, body, headers = queue.get_nowait()
            began = time.perf_counter()
            answer = await client.request(method, path, json=body, headers=headers)
            timings.add(kind, time.perf_counter() - began, answer.status_code)

    began = time.perf_counter()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return timings, time.perf_counter() - began


def serve(database_url: str, workers: int, keys_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "LOTLINE_DATABASE_URL": database_url, "LOTLINE_KEYS_DIR": str(keys_dir)}
    server = subprocess.Popen(
        [sys.executable, "-m", "scripts.cli", "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return server, base
        except httpx.TransportError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("bench_api: the server did not start")


def report(timings: Timings, seconds: float, plan: Plan, after: int, args: argparse.Namespace) -> None:
    total = sum(len(v) for v in timings.latencies.values())
    print(
        f"store {_store(args.database_url)}, {args.workers} worker(s), concurrency {args.concurrency}; "
        f"data: {plan.events:,} events before, {after:,} after; {len(plan.sites)} sites, "
        f"{len(plan.shipments)} shipments x {args.kits_per_shipment} kits"
    )
    print(f"all: {total} requests in {seconds:.2f} s = {total / seconds:.1f} requests/s")
    for kind, values in sorted(timings.latencies.items()):
        values = sorted(values)
        p50 = statistics.median(values) * 1000
        p99 = values[min(len(values) - 1, int(0.99 * len(values)))] * 1000
        print(
            f"  {kind:<8} {len(values):>5} requests, {len(values) / seconds:7.1f}/s, p50 {p50:7.1f} ms, "
            f"p99 {p99:7.1f} ms, statuses {timings.statuses[kind]}"
        )


def _store(url: str) -> str:
    return "PostgreSQL" if url.startswith("postgres") else "SQLite"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_api", description=__doc__.split("\n\n")[0])
    p.add_argument("--database-url", required=True, help="an EMPTY store (sqlite:///... or postgresql://...)")
    p.add_argument("--sites", type=int, default=8)
    p.add_argument("--shipments", type=int, default=400, help="confirmations to send (one per shipment)")
    p.add_argument("--kits-per-shipment", type=int, default=10)
    p.add_argument("--queries", type=int, default=40, help="trace queries mixed in")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    p.add_argument("--max-seconds", type=float, default=120.0, help="stop sending after this long")
    args = p.parse_args(argv)
    upgrade_store(args.database_url)
    ledger = Ledger.open(args.database_url)
    try:
        if ledger.chain.head()[0]:
            raise SystemExit("bench_api: the store is not empty; give a fresh database")
        began = time.perf_counter()
        plan = build(ledger, args.sites, args.shipments, args.kits_per_shipment)
        print(f"set up {plan.events:,} events in {time.perf_counter() - began:.1f} s", file=sys.stderr)
    finally:
        ledger.close()
    identity = Identity.open(args.database_url)
    try:
        tokens = users(identity, plan)
    finally:
        identity.close()
    with tempfile.TemporaryDirectory() as keys:
        server, base = serve(args.database_url, args.workers, Path(keys))
        try:
            httpx.get(
                f"{base}/ready", headers={"Authorization": f"Bearer {tokens['investigator']}"}, timeout=120
            )
            timings, seconds = asyncio.run(
                load(base, plan, tokens, args.concurrency, args.queries, args.max_seconds)
            )
            after = httpx.get(f"{base}/health", timeout=10).json()["chain_size"]
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    report(timings, seconds, plan, after, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
