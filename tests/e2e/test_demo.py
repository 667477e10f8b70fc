"""The demo program end to end: it verifies, its quantities add up, it is deterministic, and the
`lotline` command and the API's health check see what it wrote. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import OperationalError
from fastapi.testclient import TestClient

from api.app import create_app
from ledger.application import Ledger
from ledger.chain import event_type
from ledger.config import Settings
from ledger.domain import Kit, KitStatus, Lot, LotKind, ManufacturingBatch
from ledger.values import Quantity
from ledger.verify import verify_chain
from scripts.cli import main
from scripts.demo import DemoSummary, StoreNotEmpty, generate

# Small enough for a few seconds per store, big enough for every kind of step (3 batches, 8 shipments).
SCALE = 0.1


@pytest.fixture
def demo(database_url: str) -> Iterator[tuple[Ledger, DemoSummary]]:
    ledger = Ledger.open(database_url)
    try:
        yield ledger, generate(ledger, seed=7, scale=SCALE, progress=False)
    finally:
        ledger.close()


def events(ledger: Ledger) -> Iterator[tuple[str, UUID, dict[str, Any]]]:
    """(type, stream id, stored state) of every event, in the log's order."""
    start = 1
    while page := ledger.recorder.select_notifications(start, 500):
        for n in page:
            yield event_type(n.topic), UUID(str(n.originator_id)), json.loads(n.state)
        start = page[-1].id + 1


def streams(ledger: Ledger, first_event: str) -> list[UUID]:
    return [stream for kind, stream, _ in events(ledger) if kind == first_event]


def test_demo_chain_verifies_with_as_many_events_as_the_summary_counts(
    demo: tuple[Ledger, DemoSummary],
) -> None:
    ledger, summary = demo
    report = verify_chain(ledger.chain)
    assert report.ok, report.describe()
    assert report.count == summary.events == ledger.chain.head()[0]
    kinds = Counter(kind for kind, _, _ in events(ledger))
    assert kinds["Kit.Commissioned"] == summary.kits
    assert kinds["Shipment.Shipped"] == summary.shipments
    assert kinds["Kit.Dispensed"] == summary.dispensed
    assert kinds["ManufacturingBatch.Formulated"] == summary.batches
    assert kinds["Lot.Received"] == summary.lots
    subjects = {state["subject"] for kind, _, state in events(ledger) if kind == "Kit.Dispensed"}
    assert len(subjects) == summary.subjects
    assert all(s.startswith("SUBJ-") for s in subjects)


def test_every_raw_lot_holds_what_it_received_minus_what_its_batches_consumed(
    demo: tuple[Ledger, DemoSummary],
) -> None:
    ledger, _ = demo
    lots = [ledger.get(Lot, i) for i in streams(ledger, "Lot.Received")]
    batches = {i: ledger.get(ManufacturingBatch, i) for i in streams(ledger, "ManufacturingBatch.Formulated")}
    raw = [lot for lot in lots if lot.kind in (LotKind.API, LotKind.EXCIPIENT)]
    assert raw
    for lot in raw:
        # Recompute the consumption from the batch records that name this lot as an input.
        taken = [Quantity.from_dict(i["quantity"]).to(lot.received.unit).amount
                 for batch in batches.values() for i in batch.inputs if UUID(str(i["lot_id"])) == lot.id]
        assert len(taken) == len(lot.consumed_by)
        assert lot.remaining.amount == lot.received.amount - sum(taken, Decimal(0)), lot.lot_number
        assert lot.remaining.amount >= 0
    # An API lot split across batches, and a batch blended from two API lots.
    api_uses = Counter(UUID(str(i["lot_id"])) for b in batches.values()
                       for i in b.inputs if i["kind"] == "api")
    assert max(api_uses.values()) >= 2
    assert any(sum(1 for i in b.inputs if i["kind"] == "api") >= 2 for b in batches.values())
    # The mis-keyed receipt was corrected, and the lot now counts from the corrected quantity.
    corrected = [(stream, state) for kind, stream, state in events(ledger) if kind == "Lot.QuantityCorrected"]
    assert len(corrected) == 1
    stream, state = corrected[0]
    assert state["corrects_version"] == 1
    assert ledger.get(Lot, stream).received == Quantity.from_dict(state["quantity"])
    assert any(b.deviations for b in batches.values())


def test_kits_reach_every_life_cycle_outcome(demo: tuple[Ledger, DemoSummary]) -> None:
    ledger, summary = demo
    statuses = Counter(ledger.get(Kit, k).status for k in streams(ledger, "Kit.Commissioned"))
    assert sum(statuses.values()) == summary.kits
    # (the depots' unshipped kits of the recalled lot are quarantined by the recall of the last day)
    for status in (KitStatus.RECEIVED, KitStatus.DISPENSED, KitStatus.MISSING, KitStatus.DESTROYED,
                   KitStatus.QUARANTINED, KitStatus.RETURNED):
        assert statuses[status] > 0, status
    kinds = Counter(kind for kind, _, _ in events(ledger))
    outcomes = Counter(state["outcome"] for kind, _, state in events(ledger) if kind == "Kit.Received")
    assert outcomes["damaged"] > 0 and outcomes["missing"] > 0
    assert kinds["Kit.QuarantineReleased"] > 0  # after a transit excursion
    assert kinds["Kit.Quarantined"] > 0 and kinds["Kit.QuarantineRejected"] > 0  # a storage excursion
    assert kinds["Kit.Returned"] > 0
    assert kinds["Kit.Destroyed"] == kinds["Kit.DestructionAuthorised"] > 0
    # the recall in progress: opened, acknowledged, kits quarantined, sent back and received back
    assert kinds["Recall.Opened"] == kinds["Lot.Recalled"] == 1 and summary.recall_kits > 0
    assert kinds["Recall.Acknowledged"] > 0 and kinds["Kit.RecallQuarantined"] > 0
    assert kinds["Kit.ReturnShipped"] >= kinds["Kit.ReturnReceived"] > 0
    # routine returns too: some sites send returned and damaged kits back, the depot destroys them
    routine = [stream for kind, stream, state in events(ledger)
               if kind == "Kit.ReturnShipped" and state["recall_number"] is None]
    assert routine and all(ledger.get(Kit, k).status == KitStatus.DESTROYED for k in routine)
    # Unactivated sites exist and never received anything.
    activated = set(streams(ledger, "Location.Activated"))
    registered_sites = [stream for kind, stream, state in events(ledger)
                        if kind == "Location.Registered" and state["kind"] == "clinical_site"]
    assert len(registered_sites) == summary.sites > len(activated)


def test_kits_move_between_depots_and_lots_to_the_depot_that_packages_them(
    demo: tuple[Ledger, DemoSummary],
) -> None:
    ledger, summary = demo
    backup = summary.depots[-1]
    # a depot-to-depot transfer: kits received into the back-up depot's stock
    into_stock = [stream for kind, stream, state in events(ledger)
                  if kind == "Kit.Received" and state.get("into_stock")]
    assert 0 < len(into_stock) <= 12
    assert all(ledger.get(Kit, k).location_id == backup for k in into_stock)
    # every drug-product lot made at the plant goes to a regional depot, received there, before packaging
    made = [stream for kind, stream, state in events(ledger)
            if kind == "Lot.Received" and state["produced_by_batch_id"] is not None]
    assert made
    for lot_id in made:
        history = [type(e).__name__ for e in ledger.events.get(lot_id)]
        steps = [history.index(step) for step in ("TransferShipped", "TransferReceived", "Consumed")]
        assert steps == sorted(steps), history
        lot = ledger.get(Lot, lot_id)
        assert lot.location_id in summary.depots[:-1] and lot.in_transit_to is None


def test_demo_refuses_a_store_that_already_has_events(demo: tuple[Ledger, DemoSummary]) -> None:
    ledger, summary = demo
    with pytest.raises(StoreNotEmpty):
        generate(ledger, seed=7, scale=SCALE, progress=False)
    assert ledger.chain.head()[0] == summary.events


def _sequence(url: str, seed: int) -> list[tuple[str, UUID]]:
    ledger = Ledger.open(url)
    try:
        generate(ledger, seed=seed, scale=0.05, progress=False)
        return [(kind, stream) for kind, stream, _ in events(ledger)]
    finally:
        ledger.close()


def test_same_seed_writes_the_same_events_and_another_seed_does_not(
    new_store: Callable[[str, str], str],
) -> None:
    # Chain hashes cover the record timestamp, which is the wall clock, so runs are compared by
    # the sequence of (event type, aggregate id); aggregate ids come from business keys.
    first = _sequence(new_store("sqlite", "a"), seed=1)
    again = _sequence(new_store("sqlite", "b"), seed=1)
    other = _sequence(new_store("sqlite", "c"), seed=2)
    assert first == again
    assert other != first


def test_cli_demo_then_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/cli.db"
    keys = ["--keys-dir", str(tmp_path / "keys")]
    assert main(["demo", "--scale", "0.05", "--quiet", "--database-url", url, *keys]) == 0
    wrote = capsys.readouterr().out
    assert wrote.startswith("wrote ") and " events in " in wrote
    count = int(wrote.split()[1].replace(",", ""))
    count += int(wrote.split("API users (")[1].split()[0])  # the demo users' accounts, in the chain too

    assert main(["verify", "--database-url", url, *keys]) == 0
    assert capsys.readouterr().out.startswith(f"OK: {count} events, head ")

    # A second demo on the same store writes nothing and says why.
    assert main(["demo", "--scale", "0.05", "--quiet", "--database-url", url, *keys]) == 0
    assert "no demo data added" in capsys.readouterr().err
    assert main(["verify", "--database-url", url, *keys]) == 0
    assert capsys.readouterr().out.startswith(f"OK: {count} events, head ")


def test_health_reports_the_chain_the_demo_wrote(database_url: str) -> None:
    ledger = Ledger.open(database_url)
    try:
        summary = generate(ledger, seed=3, scale=0.05, progress=False)
        head = verify_chain(ledger.chain).head_hash
    finally:
        ledger.close()
    with TestClient(create_app(Settings(database_url=database_url))) as client:
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "chain_size": summary.events, "head_hash": head}


def test_health_is_503_when_the_store_does_not_answer(
    new_store: Callable[[str, str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with TestClient(create_app(Settings(database_url=new_store("sqlite", "h")))) as client:
        assert client.get("/health").json() == {"status": "ok", "chain_size": 0, "head_hash": "00" * 32}

        def down() -> None:
            raise OperationalError("database is locked")

        monkeypatch.setattr(client.app.state.ledger.recorder, "head", down)  # type: ignore[attr-defined]
        response = client.get("/health")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "detail": "the event store does not answer"}
