"""Benchmark of the read models: rebuild time and memory, and the latency of the recall questions.

    python -m scripts.bench_projections --database-url sqlite:///bench.db --scale 24

Uses the program already in the store, or writes the demo program (`scripts.demo`) at `--scale`
into an empty one (scale 122 is about 1,000,000 events). Then it catches the read models up, times
a full rebuild in a child process (so that its peak RSS is the rebuild's own), and measures p50 and
p95 over `--queries` calls of: the forward trace of the API lot that reaches the most kits to its
per-place kit summary (blinded and unblinded), the backward trace of random kits, and the recall
impact of that API lot. Safe to re-run: it only reads the ledger, and rebuilds the read models.
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any
from uuid import UUID

from ledger.application import Ledger
from ledger.config import Settings
from ledger.domain import LotKind
from projections.runner import REBUILD_BATCH, ProjectionRunner
from scripts.db import upgrade_store


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    url = args.database_url or Settings().database_url
    _ensure_program(url, args.scale, args.seed)
    runner = ProjectionRunner.open(url)
    try:
        began = time.perf_counter()
        applied = runner.catch_up(REBUILD_BATCH)
        _line("catch-up before measuring", f"{applied:,} events in {time.perf_counter() - began:.1f} s")
        if not args.skip_rebuild:
            _rebuild_in_child(url, args.batch_size)
        _measure_queries(runner, args.queries, args.seed)
    finally:
        runner.close()
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench_projections", description=__doc__.split("\n\n")[0],
        epilog="Figures: rebuild seconds and events/s, the rebuild's peak RSS, query p50/p95 in ms.")
    p.add_argument("--database-url", help="override LOTLINE_DATABASE_URL")
    p.add_argument("--scale", type=float, default=2.0,
                   help="demo size if the store is empty (default 2; 122 is about 1M events)")
    p.add_argument("--seed", type=int, default=20240611, help="demo seed and query sample seed")
    p.add_argument("--queries", type=int, default=200, help="queries per measured question (default 200)")
    p.add_argument("--batch-size", type=int, default=REBUILD_BATCH, help="events per rebuild transaction")
    p.add_argument("--skip-rebuild", action="store_true", help="measure queries only")
    return p


def _line(what: str, figure: str) -> None:
    print(f"{what:<44} {figure}", flush=True)


def _ensure_program(url: str, scale: float, seed: int) -> None:
    upgrade_store(url)
    ledger = Ledger.open(url)
    try:
        held, _ = ledger.chain.head()
        if held:
            _line("program", f"reusing {held:,} events in the store")
            return
        from scripts.demo import generate  # only needed to fill an empty store

        summary = generate(ledger, seed=seed, scale=scale, progress=True)
        _line("program", f"generated {summary.events:,} events ({summary.kits:,} kits, "
                         f"{summary.shipments:,} shipments, {summary.sites} sites) "
                         f"in {summary.seconds:.0f} s")
    finally:
        ledger.close()


def _rebuild(url: str, batch_size: int) -> tuple[int, float, int]:
    """In the child: rebuild every read model; (events, seconds, peak RSS in KiB)."""
    runner = ProjectionRunner.open(url)
    try:
        head, began = runner.head(), time.perf_counter()
        shown = [0]

        def progress(position: int) -> None:
            if position - shown[0] >= head / 10:
                shown[0] = position
                print(f"  rebuilt to {position:,} of {head:,} ({time.perf_counter() - began:.0f} s)",
                      file=sys.stderr, flush=True)

        events = runner.rebuild(batch_size=batch_size, progress=progress)
        seconds = time.perf_counter() - began
    finally:
        runner.close()
    return events, seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _rebuild_in_child(url: str, batch_size: int) -> None:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        events, seconds, maxrss_kib = pool.submit(_rebuild, url, batch_size).result()
    _line("rebuild of every read model", f"{seconds:.1f} s for {events:,} events "
                                         f"({events / seconds:,.0f} events/s)")
    _line("rebuild peak RSS (child process)", f"{maxrss_kib / 1024:.0f} MiB")


def _timed(call: Callable[[], Any], times: int) -> tuple[float, float]:
    """p50 and p95 in milliseconds of `times` calls, after a short warm-up."""
    for _ in range(min(10, times)):
        call()
    samples = []
    for _ in range(times):
        began = time.perf_counter()
        call()
        samples.append((time.perf_counter() - began) * 1000)
    cuts = statistics.quantiles(samples, n=20)
    return statistics.median(samples), cuts[18]


def _report(what: str, figures: tuple[float, float]) -> None:
    _line(what, f"p50 {figures[0]:.2f} ms   p95 {figures[1]:.2f} ms")


def _measure_queries(runner: ProjectionRunner, queries: int, seed: int) -> None:
    genealogy = runner.genealogy
    api_lots = [s.lot.id for s in runner.inventory.stock(kind=LotKind.API, include_empty=True).lots]
    if not api_lots:
        print("no API lots in the store: nothing to trace", file=sys.stderr)
        return
    reach = {lot: genealogy.forward_summary(lot).total_kits for lot in api_lots}
    lot = max(reach, key=lambda k: reach[k])
    summary = genealogy.forward_summary(lot)
    kits = runner.inventory.kits_by_place().total
    _line("read models at position", f"{summary.as_of:,} ({kits:,} kits, {len(api_lots)} API lots)")
    _line("traced API lot", f"{summary.lot.lot_number}: {summary.total_kits:,} kits in "
                            f"{len(summary.runs)} runs at {len(summary.places)} places")
    _report("forward: API lot -> per-place kits, blinded",
            _timed(lambda: genealogy.forward_summary(lot), queries))
    _report("forward: API lot -> per-place kits, unblinded",
            _timed(lambda: genealogy.forward_summary(lot, unblinded=True), queries))
    sample = _kit_sample(runner, lot, seed)
    picks = iter(random.Random(seed).choices(sample, k=queries + 10))
    _report("backward: kit -> input lots, blinded",
            _timed(lambda: genealogy.backward_from_kit(next(picks)), queries))
    picks = iter(random.Random(seed + 1).choices(sample, k=queries + 10))
    _report("backward: kit -> input lots, unblinded",
            _timed(lambda: genealogy.backward_from_kit(next(picks), unblinded=True), queries))
    _report("recall impact of that API lot, blinded",
            _timed(lambda: runner.recall.impact([lot]), max(queries // 10, 5)))


def _kit_sample(runner: ProjectionRunner, lot: UUID, seed: int) -> list[UUID]:
    """Kit ids to trace back: every kit the traced lot reached."""
    kits = [k.id for k in runner.genealogy.forward_from_lot(lot).kits]
    random.Random(seed).shuffle(kits)
    return kits


if __name__ == "__main__":
    sys.exit(main())
