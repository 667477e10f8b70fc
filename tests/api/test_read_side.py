"""The read side apart from the write path: a request never applies events; `?after=` waits, bounded;
a read model that fails on an event is named by /ready while the others answer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import IntegrityError

from api.app import create_app
from epcis import Epcis
from ledger.application import Ledger
from ledger.commands import HoldLot
from ledger.config import Settings
from ledger.identity import Identity
from projections.base import ProjectionTimeout
from projections.custody import Custody
from projections.db import open_engine
from projections.epcis_index import position_table
from projections.runner import ProjectionRunner
from scripts import cli
from tests.api.conftest import FAST_SCRYPT, Api, populate
from tests.builders import Program
from tests.projection_builders import QA


@pytest.fixture
def no_worker(database_url: str, tmp_path: Path) -> Iterator[Api]:
    """The app with no projection worker anywhere, and a short bounded wait."""
    ledger = Ledger.open(database_url)
    identity = Identity.open(database_url, scrypt_n=FAST_SCRYPT)
    settings = Settings(database_url=database_url, keys_dir=tmp_path / "keys", read_wait_seconds=0.5,
                        checkpoint_in_background=False)
    try:
        with TestClient(create_app(settings)) as client:
            yield Api(client, ledger, identity)
    finally:
        identity.close()
        ledger.close()


def catch_up(api: Api, database_url: str) -> ProjectionRunner:
    engine = open_engine(database_url)
    runner = ProjectionRunner(api.ledger, engine)
    runner.catch_up()
    return runner


def test_a_read_applies_no_event_and_says_how_stale_it_is(no_worker: Api, database_url: str) -> None:
    api = no_worker
    program: Program = populate(api)
    catch_up(api, database_url).engine.dispose()
    api.ledger.handle(HoldLot(lot_id=program.api, reason="OOS result under investigation"), QA)
    head = api.position()

    # Nobody applies events: the answer is the old one, and its freshness says it lags one event.
    answer = api.client.get("/recalls", headers=api.auth("recall1"))
    assert answer.status_code == 200
    assert answer.json()["freshness"] == {"as_of": head - 1, "head": head, "lag": 1}

    # Asking for the write's position waits, bounded, then says how far the read models got.
    late = api.client.get(f"/recalls?after={head}", headers=api.auth("recall1"))
    assert late.status_code == 503 and late.headers["Retry-After"] == "1"
    assert late.json()["code"] == "projection_timeout"
    assert f"reached position {head - 1}, not {head}" in late.json()["message"]

    # A worker applies it: the same read answers at once.
    catch_up(api, database_url).engine.dispose()
    fresh = api.client.get(f"/recalls?after={head}", headers=api.auth("recall1"))
    assert fresh.status_code == 200 and fresh.json()["freshness"]["lag"] == 0

    # A position no write answered with cannot be waited for: refused at once, not after the wait.
    beyond = api.client.get(f"/recalls?after={head + 1}", headers=api.auth("recall1"))
    assert beyond.status_code == 422 and beyond.json()["field"] == "query.after", beyond.text
    assert f"past the ledger's head {head}" in beyond.json()["message"]


def test_a_failing_read_model_is_named_by_ready_and_the_others_answer(
    no_worker: Api, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = no_worker
    populate(api)
    poison = api.position()

    def fails(self, conn, events):  # type: ignore[no-untyped-def]
        if any(position == poison for position, _ in events):
            raise RuntimeError("custody cannot read this event")

    monkeypatch.setattr(Custody, "apply", fails)
    catch_up(api, database_url).engine.dispose()

    ready = api.client.get("/ready", headers=api.auth("recall1"))
    assert ready.status_code == 503
    assert ready.json()["read_models"]["failed"] == [
        {"read_model": "custody", "position": poison, "error": "RuntimeError: custody cannot read this event"}
    ]
    # Waiting for that position is refused at once, naming custody; the others reached it and answer.
    waited = api.client.get(f"/recalls?after={poison}", headers=api.auth("recall1"))
    assert waited.status_code == 503 and "read model custody failed" in waited.json()["message"]
    assert api.client.get("/recalls", headers=api.auth("recall1")).json()["freshness"]["as_of"] == poison


def test_opening_a_recall_waits_for_the_genealogy_instead_of_applying_events(
    no_worker: Api, database_url: str
) -> None:
    api = no_worker
    populate(api)
    read_side = api.client.app.state.read_side  # type: ignore[attr-defined]
    # Behind the head with no worker: the kit-state reader is refused (503 with Retry-After, as above).
    with pytest.raises(ProjectionTimeout, match=r"reached position 0, not \d+"):
        read_side.kit_states()
    assert read_side.runner.positions()["genealogy"] == 0  # the request applied nothing
    catch_up(api, database_url).engine.dispose()
    _, source = read_side.kit_states()
    assert source == {"reader": "genealogy read model", "as_of": api.position()}


def test_an_epcis_index_that_stops_is_named_by_ready_and_by_lotline_project(
    no_worker: Api, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    api = no_worker
    populate(api)
    catch_up(api, database_url).engine.dispose()
    epcis = Epcis(api.ledger, database_url)
    try:
        head = epcis.sync()
        assert head == api.position() and epcis.failures() == []
        # The index's position falls behind rows it holds (as in a store copied while it was written):
        # indexing again from there collides with them.
        with epcis.engine.begin() as conn:
            conn.execute(position_table.update().values(seq=0))
        with pytest.raises(IntegrityError):
            epcis.sync()
        [failure] = epcis.failures()
        assert (failure.name, failure.position) == ("epcis_index", 1)
        assert failure.error.startswith("IntegrityError: ") and "[SQL:" not in failure.error

        ready = api.client.get("/ready", headers=api.auth("recall1"))
        assert ready.status_code == 503, ready.text
        assert ready.json()["read_models"]["failed"] == [failure.as_dict()]
        capsys.readouterr()
        assert cli.main(["project", "--database-url", database_url]) == 1
        said = capsys.readouterr()
        assert "epcis index: 0" in said.out
        stopped = "lotline project: read model epcis_index failed on the event at position 1: IntegrityError"
        assert stopped in said.err

        # Rebuilt, the index moves again and the failure is gone.
        assert cli.main(["project", "--rebuild", "--database-url", database_url]) == 0
        assert epcis.failures() == [] and epcis.position() == head
        assert api.client.get("/ready", headers=api.auth("recall1")).status_code == 200
    finally:
        epcis.close()
