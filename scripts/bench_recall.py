"""Benchmark of recall campaigns: opening a recall of the API lot that reaches the most kits, the
latency of its status, and the sites' writes on a recall of ~50,000 kits.

    python -m scripts.bench_recall --database-url sqlite:////tmp/copy-of-1m.db

WRITES to the store (it opens a recall and so recalls the lot): run it on a copy. Re-running picks
the busiest API lot not yet recalled. It catches the read models up, then times `Ledger.open_recall`
with the genealogy's bulk kit reader (the API's path): walking lot -> batches -> drug-product lots ->
packaging runs, reading every kit's status and place, recording the Opened event and the lot's recall
in one atomic save. Then p50/p95 of the status (`projections.recall_campaigns.status` over the
ledger's cached view), a cold status (the recall loaded from the store), and the outstanding list.
Then, on the large recall (`--min-kits`), the site steps: the first write (which loads the recall
into the ledger's copy kept for writing), `--reports` single-kit reports from different sites (each
brings the kept copy up to date instead of reloading it), one site's whole list in one batch; then
up to 5,000 of the kits the busiest depot of either recall holds, in one batch. `--without-reader`
also opens a recall of the next lot loading each kit aggregate, for comparison.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from ledger.application import Ledger
from ledger.commands import AcknowledgeRecall, KitReportLine, OpenRecall, ReportRecallKits
from ledger.domain import LotKind, LotStatus
from ledger.domain.recall import AffectedKit, KitOutcome, KitReport, Recall
from ledger.values import Meaning, sign
from projections import recall_campaigns as campaigns
from projections.genealogy import Genealogy
from projections.runner import REBUILD_BATCH, ProjectionRunner
from scripts.bench_actors import DEPOT, QA, SITE
from scripts.db import existing_store


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    url = existing_store(args.database_url)
    runner = ProjectionRunner.open(url)
    try:
        began = time.perf_counter()
        applied = runner.catch_up(REBUILD_BATCH)
        _line("catch-up before measuring", f"{applied:,} events in {time.perf_counter() - began:.1f} s")
        lots = _busiest_lots(runner)
        if not lots:
            print("no API lot left to recall in this store", file=sys.stderr)
            return 1
        recall_id = _open(runner, lots[:1], reader=True)
        opened = [recall_id]
        _measure_status(runner.ledger, recall_id, args.queries)
        rest = _enough(lots[1:], args.min_kits)
        if args.min_kits and rest:
            runner.catch_up(REBUILD_BATCH)
            recall_id = _open(runner, rest, reader=True)
            _measure_status(runner.ledger, recall_id, args.queries)
            _measure_site_step(runner.ledger, recall_id, args.reports)
            opened.append(recall_id)
            lots = lots[1 + len(rest) :]
        _measure_depot_batch(runner.ledger, opened)
        if args.without_reader and len(lots) > 1:
            runner.catch_up(REBUILD_BATCH)
            _open(runner, lots[1:2], reader=False)
    finally:
        runner.close()
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench_recall",
        description=__doc__.split("\n\n")[0],
        epilog="Figures: seconds to open the recall, status p50/p95 in ms. Writes: use a copy of the store.",
    )
    p.add_argument("--database-url", help="override LOTLINE_DATABASE_URL")
    p.add_argument("--reports", type=int, default=100, help="single-kit site reports to time (default 100)")
    p.add_argument("--queries", type=int, default=200, help="status queries to time (default 200)")
    p.add_argument(
        "--min-kits",
        type=int,
        default=50_000,
        help="then open one recall of the next busiest lots together, reaching at least this many kits "
        "(default 50000; 0: skip)",
    )
    p.add_argument(
        "--without-reader", action="store_true", help="also open a recall of the next lot, loading each kit"
    )
    return p


def _line(what: str, figure: str) -> None:
    print(f"{what:<52} {figure}", flush=True)


def _busiest_lots(runner: ProjectionRunner) -> list[tuple[UUID, str, int]]:
    """API lots not yet recalled, the one reaching the most kits first: (id, lot number, kits)."""
    stock = runner.inventory.stock(kind=LotKind.API, include_empty=True).lots
    found = []
    for s in stock:
        if s.lot.status == LotStatus.RECALLED:
            continue
        found.append((s.lot.id, s.lot.lot_number, runner.genealogy.forward_summary(s.lot.id).total_kits))
    return sorted(found, key=lambda f: -f[2])


def _enough(lots: list[tuple[UUID, str, int]], min_kits: int) -> list[tuple[UUID, str, int]]:
    """The first of `lots` whose kits add up to at least `min_kits` (by the genealogy's count)."""
    chosen, total = [], 0
    for lot in lots:
        if total >= min_kits:
            break
        chosen.append(lot)
        total += lot[2]
    return chosen


def _open(runner: ProjectionRunner, lots: list[tuple[UUID, str, int]], *, reader: bool) -> UUID:
    number = lots[0][1] if len(lots) == 1 else f"{len(lots)} API lots"
    kits = sum(lot[2] for lot in lots)
    ledger = runner.ledger
    kit_reader = campaigns.KitStateReader(runner.engine)
    stamp = datetime.now(UTC).strftime("%H%M%S")
    if reader:
        as_of = runner.positions()[Genealogy.name]
        ledger.use_kit_states(lambda: (kit_reader, {"reader": "genealogy read model", "as_of": as_of}))
    began = time.perf_counter()
    written = ledger.handle(
        OpenRecall(
            recall_number=f"B-{lots[0][1]}-{stamp}"[:20],
            lot_ids=[lot[0] for lot in lots],
            reason="benchmark: mock recall",
            classification="class_ii",
            scope="all_kits",
            signature=sign(QA, Meaning.APPROVED),
        ),
        QA,
    )
    seconds = time.perf_counter() - began
    how = "bulk kit reader (read model)" if reader else "each kit loaded from the store"
    _line(
        f"open recall of {number} ({how})",
        f"{seconds:.2f} s for {written.facts['kits']:,} kits (lots' forward traces add up to {kits:,})",
    )
    recall_id: UUID = written.id
    return recall_id


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


def _measure_status(ledger: Ledger, recall_id: UUID, queries: int) -> None:
    began = time.perf_counter()
    recall = ledger.get(Recall, recall_id)
    campaigns.status(recall)
    _line("status, cold (recall loaded from the store)", f"{(time.perf_counter() - began) * 1000:.0f} ms")
    _report(
        "status (cached view, brought up to date)",
        _timed(lambda: campaigns.status(ledger.recall_view(recall_id)), queries),
    )
    some_place = next(iter(recall.places))
    _report(
        "one site's task list",
        _timed(lambda: campaigns.task_list(ledger.recall_view(recall_id), some_place), queries),
    )
    _report(
        "outstanding kits, first page of 100",
        _timed(lambda: campaigns.outstanding_page(ledger.recall_view(recall_id), None, 100, 0), queries),
    )
    _report(
        "outstanding kits, all places, whole list",
        _timed(lambda: campaigns.outstanding(ledger.recall_view(recall_id)), max(queries // 10, 5)),
    )


HELD = ("available", "received", "quarantined", "damaged", "returned", "pending_destruction")
"""Statuses at opening of kits a place holds (may report quarantined); the bench changes no kit."""


def held(recall: Recall, place: str) -> list[AffectedKit]:
    """The place's outstanding kits that it holds (not dispensed, missing or in transit)."""
    return [k for k in recall.outstanding(place) if k.status_at_open in HELD]


def _measure_depot_batch(ledger: Ledger, recall_ids: list[UUID]) -> None:
    """The depot holding the most kits of any recall opened here quarantines up to 5,000 in one write
    (each kit gets its own Kit.RecallQuarantined event besides the recall's report)."""
    views = {r: ledger.recall_view(r) for r in recall_ids}
    candidates = [
        (held(view, p), r, p)
        for r, view in views.items()
        for p, info in view.places.items()
        if info["kind"] == "depot"
    ]
    kits, recall_id, depot = max(candidates, key=lambda c: len(c[0]), default=([], None, ""))
    if not kits or recall_id is None:
        _line("the depot quarantines its stock", "no depot holds kits of these recalls")
        return
    stock = [KitReport(k.kit_id, KitOutcome.QUARANTINED) for k in kits[:5000]]
    began = time.perf_counter()
    ledger.handle(ReportRecallKits(recall_id=recall_id, place_id=UUID(depot), reports=stock), DEPOT)
    _line(f"the depot quarantines {len(stock):,} kits (one write)", f"{time.perf_counter() - began:.2f} s")


def _measure_site_step(ledger: Ledger, recall_id: UUID, reports: int) -> None:
    """Site steps on the large recall: the first write loads the recall into the ledger's copy kept for
    writing; later writes bring that copy up to date (only newer events). Then one site's whole list
    in one batch, and a batch of the depot's stock."""
    recall = ledger.recall_view(recall_id)
    sites = [p for p, info in recall.places.items() if info["kind"] == "clinical_site"]
    began = time.perf_counter()
    ledger.handle(AcknowledgeRecall(recall_id=recall_id, place_id=UUID(sites[0])), SITE)
    _line(
        "first write: a site acknowledges (loads the recall)",
        f"{(time.perf_counter() - began) * 1000:.0f} ms",
    )
    samples = []
    singles = [(place, held(recall, place)[0]) for place in sites[1:] if held(recall, place)][:reports]
    for place, kit in singles:
        began = time.perf_counter()
        ledger.handle(
            ReportRecallKits(
                recall_id=recall_id,
                place_id=UUID(place),
                reports=[KitReportLine(kit_id=kit.kit_id, outcome="quarantined")],
            ),
            SITE,
        )
        samples.append((time.perf_counter() - began) * 1000)
    if len(samples) >= 2:
        cuts = statistics.quantiles(samples, n=20)
        _line(
            f"a site reports one kit ({len(samples)} sites, one write each)",
            f"p50 {statistics.median(samples):.1f} ms   p95 {cuts[18]:.1f} ms",
        )
    recall = ledger.recall_view(recall_id)  # with the reports just made
    busiest = max(sites, key=lambda p: len(held(recall, p)))
    lines = [KitReport(k.kit_id, KitOutcome.QUARANTINED) for k in held(recall, busiest)]
    began = time.perf_counter()
    ledger.handle(ReportRecallKits(recall_id=recall_id, place_id=UUID(busiest), reports=lines), SITE)
    _line(
        f"a site reports its whole list ({len(lines)} kits, one write)",
        f"{(time.perf_counter() - began) * 1000:.0f} ms",
    )
    _report(
        "status after the reports (cached view)",
        _timed(lambda: campaigns.status(ledger.recall_view(recall_id)), 50),
    )


if __name__ == "__main__":
    sys.exit(main())
