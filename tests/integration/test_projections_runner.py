"""The projection runner: exactly once, resumable, rebuildable, and honest about its freshness."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal

import pytest
from sqlalchemy import inspect

from ledger.application import Ledger
from ledger.commands import HoldLot
from projections import runner as runner_module
from projections.base import ProjectionConflict, ProjectionTimeout
from projections.db import open_engine
from projections.inventory import Inventory
from projections.runner import ProjectionRunner, ReadModelsNotReady
from scripts.cli import main as lotline
from scripts.db import upgrade_store
from tests.builders import Program
from tests.projection_builders import QA, build_scenario, dump_tables


class PowerCut(BaseException):
    """Stands for the process dying in the middle of a batch (no handler catches it)."""


class Poisoned(ValueError):
    """A read model's bug on one event."""


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    ledger = Ledger.open(database_url)
    yield ledger
    ledger.close()


@pytest.fixture
def runner(ledger: Ledger, database_url: str) -> Iterator[ProjectionRunner]:
    engine = open_engine(database_url)
    yield ProjectionRunner(ledger, engine)
    engine.dispose()


def following(runner: ProjectionRunner, write: Callable[[], object], batch_size: int = 3) -> None:
    """Run `write` while the runner applies events concurrently in small batches, then catch up."""
    follower = threading.Thread(
        target=runner.run_forever, kwargs={"poll_interval": 0.005, "batch_size": batch_size}
    )
    follower.start()
    try:
        write()
    finally:
        runner.stop()
        follower.join(timeout=60)
    assert not follower.is_alive()
    runner.catch_up()


def test_rebuild_equals_incremental_on_the_scenario(ledger: Ledger, runner: ProjectionRunner):
    # Incremental: applied while the program is written, three events per transaction.
    following(runner, lambda: build_scenario(ledger))
    incremental = dump_tables(runner)
    assert set(runner.positions().values()) == {runner.head()}

    runner.rebuild(batch_size=5000)

    assert dump_tables(runner) == incremental
    assert len(incremental["audit_entry"]) == ledger.chain.count_events() == 180
    assert len(incremental["gen_kit"]) == 40


def test_rebuild_equals_incremental_on_the_demo_program(ledger: Ledger, runner: ProjectionRunner):
    demo = pytest.importorskip("scripts.demo")
    following(runner, lambda: demo.generate(ledger, seed=11, scale=0.3, progress=False), batch_size=40)
    incremental = dump_tables(runner)

    runner.rebuild()

    assert dump_tables(runner) == incremental
    assert len(incremental["gen_kit"]) >= 400
    assert incremental["gen_run_shipment"] and incremental["gen_run_place"]
    assert incremental["gen_run_subjects"]
    assert len(incremental["audit_entry"]) == ledger.chain.count_events()


def test_a_crash_mid_catch_up_resumes_without_loss_or_double_counting(
    ledger: Ledger,
    runner: ProjectionRunner,
    monkeypatch: pytest.MonkeyPatch,
):
    build_scenario(ledger)
    batches, crash_at = 0, 4
    apply = runner.inventory.apply

    def dies_in_batch_four(conn, events):  # type: ignore[no-untyped-def]
        nonlocal batches
        batches += 1
        apply(conn, events)  # its rows are written in the open transaction...
        if batches == crash_at:
            raise PowerCut("the projection process died")  # ...and lost with it

    monkeypatch.setattr(runner.inventory, "apply", dies_in_batch_four)
    with pytest.raises(PowerCut):
        runner.catch_up(batch_size=10)

    # Three batches committed for every read model; the fourth for none (the read models commit a
    # page together), though those applied before the inventory had written their rows.
    third = ledger.recorder.select_notifications(None, 30)[-1].id
    assert set(runner.positions().values()) == {third}
    monkeypatch.undo()
    runner.catch_up(batch_size=10)
    resumed = dump_tables(runner)
    runner.rebuild()
    assert dump_tables(runner) == resumed
    stock = {s.lot.lot_number: s.remaining for s in runner.inventory.stock().lots}
    assert (stock["API-C"], stock["EXC-1"], stock["PLC-1"]) == (
        Decimal("3.4"),
        Decimal("47"),
        Decimal("1800"),
    )


def test_a_second_runner_cannot_apply_a_batch_twice(
    ledger: Ledger, runner: ProjectionRunner, database_url: str
):
    build_scenario(ledger)
    runner.catch_up(batch_size=50, max_batches=1)
    stale = runner.positions()
    other_engine = open_engine(database_url)
    try:
        other = ProjectionRunner(ledger, other_engine)
        other.catch_up()
        before = dump_tables(runner)
        # This runner still believes the read models are where they were: each read model's batch
        # is refused by its compare-and-set and rolled back, and the runner takes the new position.
        runner.positions = lambda: dict(stale)  # type: ignore[method-assign]
        refused = []
        claim = runner_module.advance

        def claiming(conn, name, old, new):  # type: ignore[no-untyped-def]
            try:
                claim(conn, name, old, new)
            except ProjectionConflict:
                refused.append(name)
                raise

        runner_module.advance = claiming  # type: ignore[assignment]
        try:
            runner.catch_up()
        finally:
            runner_module.advance = claim  # type: ignore[assignment]
        assert sorted(refused) == sorted(stale) and runner.failed == {}
        assert dump_tables(other) == before
    finally:
        other_engine.dispose()


def test_wait_for_returns_once_the_read_models_show_the_callers_write(
    ledger: Ledger,
    runner: ProjectionRunner,
):
    scenario = build_scenario(ledger)
    runner.catch_up()
    lot = scenario.lots["API-C"]
    ledger.handle(HoldLot(lot_id=lot, reason="OOS result under investigation"), QA)
    written = runner.head()
    # Nobody is applying events yet: the read side is behind, and says so.
    assert runner.genealogy.forward_summary(lot).as_of < written
    with pytest.raises(ProjectionTimeout):
        runner.wait_for(written, timeout=0.2)

    follower = threading.Thread(target=runner.run_forever, kwargs={"poll_interval": 0.01})
    follower.start()
    try:
        assert runner.wait_for(written, timeout=30) >= written
    finally:
        runner.stop()
        follower.join(timeout=30)
    summary = runner.genealogy.forward_summary(lot)
    assert summary.as_of >= written and summary.lot.status == "on_hold"


def test_rebuilding_one_read_model_leaves_the_others_alone(ledger: Ledger, runner: ProjectionRunner):
    build_scenario(ledger)
    runner.catch_up()
    before = dump_tables(runner)

    read = runner.rebuild(["inventory"])

    assert read == runner.head()
    assert dump_tables(runner) == before
    assert set(runner.positions().values()) == {runner.head()}


def test_a_read_model_with_a_new_schema_is_refused_until_db_upgrade_rebuilds_it(
    ledger: Ledger, runner: ProjectionRunner, database_url: str, monkeypatch: pytest.MonkeyPatch
):
    build_scenario(ledger)
    runner.catch_up()
    before = dump_tables(runner)

    monkeypatch.setattr(Inventory, "schema", Inventory.schema + 1)  # its tables changed in a new release
    wanted = rf"inventory \(schema {Inventory.schema - 1}, needs {Inventory.schema}\).*lotline db upgrade"
    with pytest.raises(ReadModelsNotReady, match=wanted):
        ProjectionRunner(ledger, runner.engine)
    upgrade_store(database_url)

    assert runner.positions()["inventory"] == 0 and runner.positions()["genealogy"] == runner.head()
    assert dump_tables(runner)["inv_lot"] == []
    runner.catch_up()
    assert dump_tables(runner) == before


def test_indexes_left_out_by_an_interrupted_rebuild_come_back_with_db_upgrade(
    ledger: Ledger, runner: ProjectionRunner, database_url: str, monkeypatch: pytest.MonkeyPatch,
):
    build_scenario(ledger)
    monkeypatch.setattr(runner, "catch_up", lambda *a, **k: (_ for _ in ()).throw(PowerCut("killed")))
    with pytest.raises(PowerCut):
        runner.rebuild()  # dies after dropping the tables, before the indexes are built again
    assert "gen_kit_run" not in {ix["name"] for ix in inspect(runner.engine).get_indexes("gen_kit")}

    upgrade_store(database_url)

    assert "gen_kit_run" in {ix["name"] for ix in inspect(runner.engine).get_indexes("gen_kit")}


def test_a_read_model_that_fails_on_an_event_stops_alone_and_says_where(
    ledger: Ledger, runner: ProjectionRunner, database_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    build_scenario(ledger)
    poison = ledger.recorder.select_notifications(None, 25)[-1].id
    apply = type(runner.custody).apply

    def fails_on_the_poison(self, conn, events):  # type: ignore[no-untyped-def]
        if any(position == poison for position, _ in events):
            raise Poisoned("custody cannot read this event")
        apply(self, conn, events)

    monkeypatch.setattr(type(runner.custody), "apply", fails_on_the_poison)
    runner.catch_up(batch_size=10)

    # The others reached the head; custody stopped just before the poison, which is recorded.
    head = runner.head()
    positions = runner.positions()
    assert positions.pop("custody") == poison - 1
    assert set(positions.values()) == {head}
    (failure,) = runner.failures()
    assert (failure.name, failure.position) == ("custody", poison)
    assert "Poisoned: custody cannot read this event" in failure.error
    with pytest.raises(ProjectionTimeout, match="read model custody failed on the event at position"):
        runner.wait_for(head, timeout=5)

    # `lotline project` names it and exits non-zero; so does a rebuild.
    assert lotline(["project", "--database-url", database_url]) == 1
    err = capsys.readouterr().err
    assert f"read model custody failed on the event at position {poison}" in err
    assert lotline(["project", "--rebuild", "--database-url", database_url]) == 1
    assert f"read model custody failed on the event at position {poison}" in capsys.readouterr().err

    # Fixed and restarted, a runner applies it after all and the record is gone.
    monkeypatch.undo()
    assert lotline(["project", "--database-url", database_url]) == 0
    assert runner.failures() == [] and set(runner.positions().values()) == {head}


def test_a_page_whose_transaction_fails_is_applied_again_read_model_by_read_model(
    ledger: Ledger, runner: ProjectionRunner, monkeypatch: pytest.MonkeyPatch
):
    build_scenario(ledger)
    runner.catch_up(batch_size=10, max_batches=1)  # the first page (and the ledger's origin) applied
    writing, failed = runner_module.writing, []

    @contextmanager
    def commit_fails_once(engine):  # type: ignore[no-untyped-def]
        with writing(engine) as conn:
            yield conn
            if not failed:
                failed.append(conn)
                raise OSError("disk I/O error")  # in the commit: the whole page rolls back

    monkeypatch.setattr(runner_module, "writing", commit_fails_once)
    runner.catch_up(batch_size=10)

    assert failed and runner.failed == {} and runner.failures() == []
    assert set(runner.positions().values()) == {runner.head()}
    applied = dump_tables(runner)
    runner.rebuild()
    assert dump_tables(runner) == applied


def test_stop_ends_a_long_catch_up_after_its_page(ledger: Ledger, runner: ProjectionRunner) -> None:
    """A worker told to stop (SIGTERM) mid-rebuild finishes the page it is on, not the whole log."""
    Program.released(ledger)
    pages: list[int] = []

    def stop_after_the_first_page(position: int) -> None:
        pages.append(position)
        runner.stop()

    read = runner.catch_up(batch_size=10, progress=stop_after_the_first_page, stoppable=True)
    assert (read, pages) == (10, [10])
    assert runner.position() == 10 < runner.head()
    assert runner.catch_up() == runner.head() - 10  # an explicit catch-up afterwards goes on
