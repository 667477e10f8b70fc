"""Load benchmark through HTTP, where recall investigators and sites stand: `lotline serve` (1 or 2 API
workers plus its projection worker) on loopback, driven at fixed arrival rates; prints p50/p95/p99,
requests/s and 5xx per route and phase.

    python -m scripts.bench_load --database-url sqlite:////tmp/copy-of-1m.db --keys-dir /path/keys
    python -m scripts.bench_load --database-url postgresql://lotline:x@127.0.0.1:55432/copy --keys-dir ...

The store is written to: give a COPY of the store to measure (e.g. of `lotline demo --scale 122`, ~1M
events; on SQLite with its read models' file, `<store>-read`, or they are built again from zero first),
with the keys directory its writer key is in. First, outside the timings, the script adds a
program of its own through the ledger (a trial, `--sites` sites, runs of kits, and one shipment of
`--kits-per-receipt` kits in transit per receipt it will send), and users with tokens. Then, for each
`--workers` count, it starts `lotline serve`, waits until the read models have applied every event, and
runs three phases:

- idle: one request at a time, forward traces (`/trace/lots/{id}/forward`) of every API lot in the store
  and backward traces (`/trace/kits/{id}/backward`) of kits across the store, each backward trace
  followed by the floor: an unknown path (404), which costs what every answer costs through this
  client and the server's stack, side by side with the traces;
- idle, plain HTTP/1.1 client: the same requests again through `PlainClient` (one kept-alive socket,
  ~30 us of client time a request where httpx spends about a millisecond): what the server takes,
  through HTTP, without the benchmark client's own cost;
- peak: the peak of a 300-site trial with investigators at work: `--peak-receipts` receipt confirmations
  per second (POST with an Idempotency-Key, as a site sends them) and `--peak-traces` traces per second,
  for `--peak-seconds`;
- ramp: the same mix with receipts at each multiple of the peak in `--ramp` (default 1,2,3,4), for
  `--ramp-seconds` each: where the server saturates, and whether it answers 5xx there.

Arrivals are open-loop (a request is sent at its scheduled time whether or not earlier ones have been
answered), and latency counts from the scheduled time, so a server that falls behind shows it in its
latencies instead of slowing the client down. Bounded: at most `--max-in-flight` requests at a time, a
30 s timeout per request, every phase has a fixed length, and the server is stopped at the end.
`--out` writes every figure as JSON as well.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
from sqlalchemy import func, select

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
    ReceiveLotTransfer,
    RegisterLocation,
    RegisterTrial,
    ReleaseLot,
    Ship,
    SponsorRelease,
    TransferLot,
)
from ledger.domain import Kit
from ledger.gs1 import with_check_digit
from ledger.identity import Identity
from ledger.values import Meaning, Quantity, Role, sign
from projections import genealogy
from projections.db import open_engine
from scripts.bench_actors import ADMIN, DEPOT, MFG, MFG2, QA, QP
from scripts.db import upgrade_store

KIT_GTIN = with_check_digit("0400000000404")
KITS_PER_RUN = 2_000
"""Kits per packaging run: one run is one commit, and on PostgreSQL a commit of ~10,000 events hangs
in psycopg's pipeline mode (the library's insert; bare eventsourcing does the same, see the closing
note of issue 12), so the benchmark packages as the demo does."""
TIMEOUT = 30.0


# --- the program the load runs on -------------------------------------------------------------------


@dataclass
class Shipment:
    site: UUID
    shipment: UUID
    kits: list[str]


@dataclass
class Plan:
    """What the load uses: receipts to send (shipments in transit), lots and kits to trace."""

    shipments: list[Shipment]
    sites: list[UUID]
    api_lots: list[UUID]
    kits: list[UUID]
    events_before: int = 0


def build(ledger: Ledger, tag: int, sites: int, shipments: int, kits_per_shipment: int) -> Plan:
    """A trial, plant, depot and `sites` active sites of its own (numbered by `tag`, so a store can hold
    several), a released API lot formulated and packaged into released runs of kits, and `shipments`
    shipments of `kits_per_shipment` kits from the depot, in transit."""
    today = date.today()
    trial = ledger.handle(
        RegisterTrial(code=f"BENCH-{tag}", title="load benchmark", sponsor="bench", countries=["DE"],
                      do_not_ship_days=30, do_not_dispense_days=7),
        ADMIN,
    ).id

    def place(n: int, kind: str, name: str, **more: Any) -> UUID:
        gln = with_check_digit(f"49{tag:04d}{n:06d}")
        return ledger.handle(RegisterLocation(gln=gln, kind=kind, name=name, country="DE", **more), ADMIN).id

    plant = place(0, "manufacturing_site", f"Bench plant {tag}")
    depot = place(1, "depot", f"Bench depot {tag}")
    site_ids = []
    for n in range(sites):
        site = place(100 + n, "clinical_site", f"Bench site {tag}-{n + 1}", trial_id=trial,
                     site_number=f"{n + 1}")
        ledger.handle(ActivateSite(site_id=site), ADMIN)
        site_ids.append(site)

    def lot(number: str, kind: str, amount: str, unit: str, item: str) -> UUID:
        lot_id = ledger.handle(
            ReceiveLot(gtin=with_check_digit(item), lot_number=number, kind=kind, material=number,
                       quantity=Quantity.of(amount, unit), location_id=plant,
                       manufactured_on=today - timedelta(days=30), expires_on=today + timedelta(days=900),
                       supplier="Supplier"),
            MFG,
        ).id
        ledger.handle(ReleaseLot(lot_id=lot_id, signature=sign(QA, Meaning.RELEASED),
                                 results_ref=f"COA-{number}"), QA)
        return lot_id

    kits = shipments * kits_per_shipment
    api_lot = lot(f"API-B{tag}", "api", "50", "kg", "0400000000101")
    excipient = lot(f"EXC-B{tag}", "excipient", "500", "kg", "0400000000202")
    _, dp = ledger.handle(
        Formulate(
            batch_number=f"B-{tag}", product="bench", location_id=plant,
            inputs=[(api_lot, Quantity.of("1", "kg")), (excipient, Quantity.of("10", "kg"))],
            output=OutputLot(gtin=with_check_digit("0400000000303"), lot_number=f"DP-B{tag}",
                             material="tablets", expires_on=today + timedelta(days=800)),
            theoretical_yield=Quantity.of(kits, "unit"), actual_yield=Quantity.of(kits, "unit"),
            equipment=["MIX"], checked_by=MFG2,
        ),
        MFG,
    ).created
    ledger.handle(ReleaseLot(lot_id=dp, signature=sign(QA, Meaning.RELEASED), results_ref="QC-1"), QA)
    ledger.handle(TransferLot(lot_id=dp, transfer_number=f"TR-{tag}", from_id=plant, to_id=depot), MFG)
    ledger.handle(ReceiveLotTransfer(lot_id=dp, location_id=depot), DEPOT)  # packaged at the depot
    numbers = [f"B{tag}-{i:06d}" for i in range(1, kits + 1)]
    for r, start in enumerate(range(0, kits, KITS_PER_RUN)):
        chunk = numbers[start : start + KITS_PER_RUN]
        run = ledger.handle(
            Package(batch_number=f"P-{tag}-{r + 1}", trial_id=trial, location_id=depot, kit_gtin=KIT_GTIN,
                    label_version="v1",
                    arms=[Arm(treatment="A", dp_lot_id=dp, units_per_kit=1, units_issued=len(chunk))],
                    kit_list=[(n, "A") for n in chunk], checked_by=MFG2),
            MFG,
        ).id
        ledger.handle(DisposePackaging(run_id=run, signature=sign(QA, Meaning.RELEASED), released=True), QA)
        ledger.handle(CertifyPackaging(run_id=run, signature=sign(QP, Meaning.CERTIFIED)), QP)
        ledger.handle(SponsorRelease(run_id=run, country="DE", signature=sign(QA, Meaning.SPONSOR_RELEASED)),
                      QA)
    planned = []
    for s in range(shipments):
        chunk = numbers[s * kits_per_shipment : (s + 1) * kits_per_shipment]
        site = site_ids[s % sites]
        shipment = ledger.handle(
            Ship(shipment_number=f"S-{tag}-{s + 1}", sscc=with_check_digit(f"3{tag:04d}{s:012d}"),
                 from_id=depot, to_id=site, kit_ids=[Kit.create_id(KIT_GTIN, n) for n in chunk],
                 min_celsius=Decimal(2), max_celsius=Decimal(8)),
            DEPOT,
        ).id
        planned.append(Shipment(site, shipment, chunk))
        if (s + 1) % 500 == 0:
            print(f"  shipped {s + 1} of {shipments}", file=sys.stderr)
    return Plan(planned, site_ids, [], [])


def traced(database_url: str, sample: int, seed: int) -> tuple[list[UUID], list[UUID]]:
    """Every API lot of the store and `sample` kits spread over it, from the genealogy read model."""
    engine = open_engine(database_url)
    try:
        with engine.connect() as conn:
            lots = list(conn.scalars(select(genealogy.lot.c.lot_id).where(genealogy.lot.c.kind == "api")))
            total = conn.scalar(select(func.count()).select_from(genealogy.kit)) or 0
            rng = random.Random(seed)
            offsets = sorted(rng.sample(range(total), min(sample, total)))
            kits = [
                conn.scalar(select(genealogy.kit.c.kit_id).order_by(genealogy.kit.c.kit_id).offset(o).limit(1))
                for o in offsets
            ]
    finally:
        engine.dispose()
    return lots, [k for k in kits if k is not None]


BY: dict[str, Any] = {"by": ADMIN, "reason": "load benchmark: its own users"}


def users(identity: Identity, plan: Plan, tag: int) -> dict[str, str]:
    """One site user per site and a recall investigator; their tokens."""
    tokens = {}
    for n, site in enumerate(plan.sites):
        identity.add_user(f"bench{tag}-site{n}", name=f"Site User {n}", role=Role.SITE, places=[site], **BY)
        tokens[str(site)] = identity.issue_token(f"bench{tag}-site{n}", **BY)
    identity.add_user(f"bench{tag}-investigator", name="Rita Recall", role=Role.RECALL_INVESTIGATOR, **BY)
    tokens["investigator"] = identity.issue_token(f"bench{tag}-investigator", **BY)
    return tokens


# --- measuring -------------------------------------------------------------------------------------------


@dataclass
class Route:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)

    def add(self, seconds: float, status: int) -> None:
        self.latencies.append(seconds)
        self.statuses[status] = self.statuses.get(status, 0) + 1

    def note(self, error: str) -> None:
        """Why a request got no answer (598): the client's exception, e.g. the server closed the
        connection (RemoteProtocolError) or it could not be opened (ConnectError)."""
        self.errors[error] = self.errors.get(error, 0) + 1

    def figures(self, seconds: float) -> dict[str, Any]:
        values = sorted(self.latencies)

        def pct(p: float) -> float:
            return round(values[min(len(values) - 1, int(p * len(values)))] * 1000, 2)

        return {
            "requests": len(values),
            "per_second": round(len(values) / seconds, 1),
            "p50_ms": round(statistics.median(values) * 1000, 2),
            "p95_ms": pct(0.95),
            "p99_ms": pct(0.99),
            "5xx": sum(n for s, n in self.statuses.items() if s >= 500),
            "statuses": {str(s): n for s, n in sorted(self.statuses.items())},
            "no_answer": dict(self.errors),
        }


@dataclass
class Phase:
    name: str
    seconds: float = 0.0
    routes: dict[str, Route] = field(default_factory=dict)

    def add(self, route: str, seconds: float, status: int) -> None:
        self.routes.setdefault(route, Route()).add(seconds, status)

    def figures(self) -> dict[str, Any]:
        return {
            "phase": self.name,
            "seconds": round(self.seconds, 1),
            "routes": {r: v.figures(self.seconds) for r, v in sorted(self.routes.items())},
        }


Request = tuple[str, str, str, dict[str, Any] | None, dict[str, str]]


class Load:
    """The requests of a run: receipts (each shipment once), traces (round robin over lots and kits)."""

    def __init__(self, plan: Plan, tokens: dict[str, str], seed: int) -> None:
        self.receipts = iter(plan.shipments)
        self.tokens = tokens
        self.rng = random.Random(seed)
        self.plan = plan
        self.traces = 0
        self.investigator = {"Authorization": f"Bearer {tokens['investigator']}"}

    def receipt(self) -> Request | None:
        shipment = next(self.receipts, None)
        if shipment is None:
            return None
        body = {"outcomes": dict.fromkeys(shipment.kits, "received"), "logger_min": "3", "logger_max": "7"}
        headers = {
            "Authorization": f"Bearer {self.tokens[str(shipment.site)]}",
            "Idempotency-Key": f"bench-{shipment.shipment}",
        }
        path = f"/sites/{shipment.site}/shipments/{shipment.shipment}/receipt"
        return "receipt", "POST", path, body, headers

    def forward(self, lot: UUID | None = None) -> Request:
        lot = lot or self.rng.choice(self.plan.api_lots)
        return "forward trace", "GET", f"/trace/lots/{lot}/forward", None, self.investigator

    def backward(self, kit: UUID | None = None) -> Request:
        kit = kit or self.rng.choice(self.plan.kits)
        return "backward trace", "GET", f"/trace/kits/{kit}/backward", None, self.investigator

    def floor(self) -> Request:
        """What any answer costs through this client and the server's stack: an unknown path, with the
        investigator's token (matched against every route, answered 404 without reading the store)."""
        return "floor (404)", "GET", "/no-such-route", None, self.investigator

    def trace(self) -> Request:
        self.traces += 1
        return self.forward() if self.traces % 2 else self.backward()


async def send(client: httpx.AsyncClient, phase: Phase, request: Request, scheduled: float) -> None:
    route, method, path, body, headers = request
    try:
        answer = await client.request(method, path, json=body, headers=headers)
        status = answer.status_code
    except httpx.TimeoutException:
        status = 599  # no answer within TIMEOUT: counted with the 5xx
    except httpx.TransportError as e:
        status = 598  # the connection failed or was dropped: no answer, counted with the 5xx
        phase.routes.setdefault(route, Route()).note(type(e).__name__)
    phase.add(route, time.perf_counter() - scheduled, status)


async def idle(client: httpx.AsyncClient, load: Load, rounds: int) -> Phase:
    """One request at a time: every API lot forward, then as many kits backward, `rounds` times."""
    phase = Phase("idle")
    began = time.perf_counter()
    for _ in range(rounds):
        for lot in load.plan.api_lots:
            await send(client, phase, load.forward(lot), time.perf_counter())
        for kit in load.rng.sample(load.plan.kits, min(len(load.plan.kits), len(load.plan.api_lots))):
            await send(client, phase, load.backward(kit), time.perf_counter())
            await send(client, phase, load.floor(), time.perf_counter())
    phase.seconds = time.perf_counter() - began
    return phase


class PlainClient:
    """HTTP/1.1 GETs on one kept-alive loopback connection, reading only the status line, the
    Content-Length and the body: about 30 us of the client's own time a request, where httpx spends
    about a millisecond (the floor through httpx is ~1.7 ms, most of it the client). What an investigator's
    own tool would see of the server, one request at a time."""

    def __init__(self, base: str) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.sock: socket.socket | None = None
        self.buffer = b""

    def get(self, path: str, headers: dict[str, str]) -> int:
        if self.sock is None:  # first, or after the server said it closes the connection
            self.sock = socket.create_connection((self.host, self.port), timeout=TIMEOUT)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.buffer = b""
        lines = [f"GET {path} HTTP/1.1", f"Host: {self.host}", *(f"{k}: {v}" for k, v in headers.items())]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        while b"\r\n\r\n" not in self.buffer:
            self._read()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *fields = head.decode("latin-1").split("\r\n")
        length = next(
            (int(f.split(":", 1)[1]) for f in fields if f.lower().startswith("content-length:")), None
        )
        if length is None:
            raise RuntimeError(f"no Content-Length in the answer to {path}: {head[:200]!r}")
        while len(self.buffer) < length:
            self._read()
        self.buffer = self.buffer[length:]
        if any(f.lower().replace(" ", "") == "connection:close" for f in fields):
            self.close()
        return int(status_line.split(" ", 2)[1])

    def _read(self) -> None:
        assert self.sock is not None
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None


def idle_plain(base: str, load: Load, rounds: int, seed: int) -> Phase:
    """The idle phase's requests again, through `PlainClient`: the same traces and floor, one at a time
    (kits drawn from a generator of its own, so the later phases draw what they drew before). A request
    that gets no answer counts as 598, as in the other phases, and the next one reconnects."""
    phase = Phase("idle, plain HTTP/1.1 client")
    rng = random.Random(seed + 1)
    client = PlainClient(base)
    began = time.perf_counter()
    try:
        for _ in range(rounds):
            requests = [load.forward(lot) for lot in load.plan.api_lots]
            for kit in rng.sample(load.plan.kits, min(len(load.plan.kits), len(load.plan.api_lots))):
                requests += [load.backward(kit), load.floor()]
            for route, _, path, _, headers in requests:
                sent = time.perf_counter()
                try:
                    status = client.get(path, headers)
                except (OSError, RuntimeError, ValueError) as e:  # dropped, timed out, not HTTP
                    status = 598
                    phase.routes.setdefault(route, Route()).note(type(e).__name__)
                    client.close()  # the next request connects afresh
                phase.add(route, time.perf_counter() - sent, status)
    finally:
        client.close()
    phase.seconds = time.perf_counter() - began
    return phase


async def mixed(
    client: httpx.AsyncClient, load: Load, name: str, receipts: float, traces: float, seconds: float,
    max_in_flight: int,
) -> Phase:
    """Open-loop arrivals: `receipts` and `traces` per second, evenly spaced, for `seconds`."""
    phase = Phase(name)
    gate = asyncio.Semaphore(max_in_flight)
    schedule = sorted(
        [(i / receipts, "r") for i in range(int(receipts * seconds))]
        + [(i / traces + 0.5 / traces, "t") for i in range(int(traces * seconds))]
    )
    tasks = []
    began = time.perf_counter()

    async def one(request: Request, scheduled: float) -> None:
        async with gate:
            await send(client, phase, request, scheduled)

    for at, kind in schedule:
        request = load.receipt() if kind == "r" else load.trace()
        if request is None:
            raise SystemExit(f"bench_load: out of shipments in phase {name}; plan more")
        delay = began + at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(request, began + at)))
    await asyncio.gather(*tasks)
    phase.seconds = max(seconds, time.perf_counter() - began)
    return phase


async def run_phases(base: str, load: Load, args: argparse.Namespace) -> list[Phase]:
    limits = httpx.Limits(max_connections=args.max_in_flight, max_keepalive_connections=args.max_in_flight)
    async with httpx.AsyncClient(base_url=base, timeout=TIMEOUT, limits=limits) as client:
        phases = [await idle(client, load, args.idle_rounds)]
        report(phases[-1])
        phases.append(idle_plain(base, load, args.idle_rounds, args.seed))
        report(phases[-1])
        phases.append(await mixed(client, load, "peak", args.peak_receipts, args.peak_traces,
                                  args.peak_seconds, args.max_in_flight))
        report(phases[-1])
        for step in args.ramp:
            phases.append(await mixed(client, load, f"ramp x{step:g}", step * args.peak_receipts,
                                      args.peak_traces, args.ramp_seconds, args.max_in_flight))
            report(phases[-1])
    return phases


# --- the server ----------------------------------------------------------------------------------------


def serve(database_url: str, workers: int, keys_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`lotline serve` (with its projection worker) on a free loopback port; its output goes to `log`."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "LOTLINE_DATABASE_URL": database_url, "LOTLINE_KEYS_DIR": str(keys_dir)}
    with log.open("ab") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "scripts.cli", "serve", "--port", str(port), "--workers", str(workers)],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return server, base
        except httpx.TransportError:
            time.sleep(0.2)
    stop(server)
    raise SystemExit(f"bench_load: the server did not start; see {log}")


def stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def caught_up(base: str, token: str, timeout: float) -> dict[str, Any]:
    """Wait until the read models and the EPCIS index have applied every event (`/ready`: lag 0, the
    index at the head). The index is kept by the projection worker's thread beside the read models; not
    waited for, it indexed the benchmark's own program (~220,000 events) during the first phases, and its
    commits held SQLite's write lock under the receipts (a receipt's p99 at the peak: 963 ms)."""
    deadline = time.monotonic() + timeout
    ready: dict[str, Any] = {}
    while time.monotonic() < deadline:
        answer = httpx.get(f"{base}/ready", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        ready = answer.json()
        models = ready.get("read_models", {})
        indexed = models.get("epcis_index") or 0  # a chain position, as chain_size is
        if answer.status_code == 200 and models["lag"] == 0 and indexed >= ready["chain_size"]:
            return ready
        if ready.get("read_models", {}).get("failed"):
            raise SystemExit(f"bench_load: a read model failed: {ready['read_models']['failed']}")
        time.sleep(1)
    raise SystemExit(f"bench_load: the read models did not catch up within {timeout:.0f} s: {ready}")


# --- reporting -------------------------------------------------------------------------------------------


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def report(phase: Phase) -> None:
    print(f"  {phase.name} ({phase.seconds:.0f} s, load average {load_average()})", flush=True)
    for route, v in sorted(phase.routes.items()):
        f = v.figures(phase.seconds)
        print(
            f"    {route:<15} {f['requests']:>6} req {f['per_second']:>7.1f}/s  p50 {f['p50_ms']:>8.1f} ms  "
            f"p95 {f['p95_ms']:>8.1f} ms  p99 {f['p99_ms']:>8.1f} ms  5xx {f['5xx']}  {f['statuses']}"
            + (f"  no answer: {f['no_answer']}" if f["no_answer"] else ""),
            flush=True,
        )


def shipments_needed(args: argparse.Namespace) -> int:
    per_run = args.peak_receipts * args.peak_seconds + sum(
        step * args.peak_receipts * args.ramp_seconds for step in args.ramp
    )
    return int(per_run + 1) * len(args.workers)


def _store(url: str) -> str:
    return "PostgreSQL" if url.startswith("postgres") else "SQLite"


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_load", description=__doc__.split("\n\n")[0])
    p.add_argument("--database-url", required=True, help="a COPY of the store to measure: it is written to")
    p.add_argument("--keys-dir", type=Path, required=True, help="the store's writer key's directory")
    p.add_argument("--workers", type=_ints, default=[1, 2], help="API worker counts to run, e.g. 1,2")
    p.add_argument("--sites", type=int, default=50, help="sites of the benchmark's own program")
    p.add_argument("--kits-per-receipt", type=int, default=20)
    p.add_argument("--peak-receipts", type=float, default=15.0, help="receipts per second at peak")
    p.add_argument("--peak-traces", type=float, default=2.0, help="traces per second (forward, backward)")
    p.add_argument("--peak-seconds", type=float, default=30.0)
    p.add_argument("--ramp", type=_floats, default=[1.0, 2.0, 3.0, 4.0], help="multiples of the peak")
    p.add_argument("--ramp-seconds", type=float, default=15.0)
    p.add_argument("--idle-rounds", type=int, default=6, help="rounds of traces of every API lot, idle")
    p.add_argument("--kit-sample", type=int, default=500, help="kits to draw backward traces from")
    p.add_argument("--max-in-flight", type=int, default=256)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", type=Path, help="also write the figures here as JSON")
    p.add_argument("--server-log", type=Path, default=Path("bench_load.server.log"),
                   help="where the server's output goes (default ./bench_load.server.log)")
    args = p.parse_args(argv)

    url = args.database_url
    upgrade_store(url, keys_dir=args.keys_dir)
    tag = random.SystemRandom().randrange(1000, 10000)
    ledger = Ledger.open(url, keys_dir=args.keys_dir)
    try:
        events_before = ledger.chain.head()[0]
        began = time.perf_counter()
        wanted = shipments_needed(args)
        print(f"bench_load: adding program {tag} with {wanted} shipments in transit", file=sys.stderr)
        plan = build(ledger, tag, args.sites, wanted, args.kits_per_receipt)
        setup = time.perf_counter() - began
        events = ledger.chain.head()[0]
    finally:
        ledger.close()
    identity = Identity.open(url, keys_dir=args.keys_dir)
    try:
        tokens = users(identity, plan, tag)
    finally:
        identity.close()
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"{_store(url)}: {events_before:,} events, {events:,} with the benchmark's program "
          f"(set up in {setup:.0f} s); {machine}")
    per_run = len(plan.shipments) // len(args.workers)
    results: dict[str, Any] = {"store": _store(url), "events_before": events_before, "machine": machine,
                               "runs": []}
    for n, workers in enumerate(args.workers):
        run_plan = Plan(plan.shipments[n * per_run : (n + 1) * per_run], plan.sites, [], [])
        server, base = serve(url, workers, args.keys_dir, args.server_log)
        try:
            waited = time.perf_counter()
            ready = caught_up(base, tokens["investigator"], timeout=3600)
            run_plan.api_lots, run_plan.kits = traced(url, args.kit_sample, args.seed)
            run_plan.events_before = ready["chain_size"]
            print(f"{workers} API worker(s) + the projection worker; read models caught up in "
                  f"{time.perf_counter() - waited:.0f} s at {ready['chain_size']:,} events; "
                  f"{len(run_plan.api_lots)} API lots, {len(run_plan.kits)} kits to trace", flush=True)
            phases = asyncio.run(run_phases(base, Load(run_plan, tokens, args.seed), args))
            after = httpx.get(f"{base}/health", timeout=30).json()["chain_size"]
        finally:
            stop(server)
        results["runs"].append({"workers": workers, "events_before": run_plan.events_before,
                                "events_after": after, "phases": [ph.figures() for ph in phases]})
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
