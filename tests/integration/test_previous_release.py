"""`lotline db upgrade` on a store made by the release before migrations brings it up to date.

The store is made by that release's own code (tests/fixtures/make_previous_store.py: its demo, then
its API), from the repository's history. Without the history the test skips, except under CI, where
it fails: CI runs on a full clone.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ledger import schema
from ledger.application import Ledger
from ledger.commands import RegisterLocation
from ledger.config import Settings
from ledger.db import open_engine, redacted
from ledger.gs1 import with_check_digit
from ledger.identity import Identity
from ledger.keys import KeyRing
from ledger.values import Actor, Role
from projections.db import open_engine as open_read_engine
from projections.db import reading
from projections.runner import not_ready
from scripts.cli import main as lotline
from tests.fixtures.make_previous_store import PREVIOUS_RELEASE, HistoryUnavailable, make_previous_store
from tests.stores import row_counts, schema_of

DEMO_USERS = {"admin", "manufacturing", "manufacturing2", "qa", "qp", "depot", "site", "recall_investigator",
              "inspector"}


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture
def previous_store(empty_database_url: str, tmp_path: Path) -> tuple[str, str]:
    """A store made by the previous release's code, and an API token that release issued."""
    try:
        token = make_previous_store(empty_database_url, tmp_path / "keys")
    except HistoryUnavailable as e:
        message = f"cannot make a store of {PREVIOUS_RELEASE}: {e}"
        if _in_ci():
            pytest.fail(f"{message}; CI must run on a clone with the history", pytrace=False)
        pytest.skip(message)
    return empty_database_url, token


def _chain_head(url: str) -> tuple[int, str]:
    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            last = "SELECT seq, chain_hash FROM ledger_chain ORDER BY seq DESC LIMIT 1"
            row = conn.exec_driver_sql(last).one()
    finally:
        engine.dispose()
    return int(row[0]), bytes(row[1]).hex()


def _chain_head_at(url: str, seq: int) -> str:
    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.exec_driver_sql(f"SELECT chain_hash FROM ledger_chain WHERE seq = {int(seq)}").one()
    finally:
        engine.dispose()
    return bytes(row[0]).hex()


def test_db_upgrade_brings_a_store_of_the_previous_release_up_to_date(
    previous_store: tuple[str, str],
    new_store: Callable[[str, str], str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, token = previous_store
    backend = "sqlite" if url.startswith("sqlite") else "postgres"
    # The previous release made its tables and no revision: this release sees that and refuses to run.
    found = schema.state(url)
    assert (found.revision, found.has_tables) == (None, True)
    size, head = _chain_head(url)
    rows_before = row_counts(url)
    assert size > 400 and rows_before["lotline_events"] == size
    assert rows_before["api_idempotency_keys"] == 1 and rows_before["epcis_event"] > 0
    assert lotline(["verify", "--database-url", url]) == 2
    refused = capsys.readouterr().err
    assert "before schema migrations" in refused
    assert f"lotline db upgrade --database-url {redacted(url)}" in refused
    with pytest.raises(schema.StoreNotReady), TestClient(create_app(Settings(database_url=url))):
        pass

    # Upgrade, then again (nothing left to do).
    assert lotline(["db", "upgrade", "--database-url", url]) == 0
    assert f"from revision (none) to {schema.head()}" in capsys.readouterr().out
    assert lotline(["db", "upgrade", "--database-url", url]) == 0
    assert "already at revision" in capsys.readouterr().out

    # Every table at the head: the ledger's revision, the read models' schemas; the same schema as a
    # store made new by this release.
    assert lotline(["db", "current", "--database-url", url]) == 0
    assert "(current)" in capsys.readouterr().out
    assert schema.state(url).current
    engine = open_read_engine(url)
    try:
        with reading(engine) as conn:
            assert not_ready(conn) == {}
    finally:
        engine.dispose()
    assert schema_of(url) == schema_of(new_store(backend, "fresh"))

    # Nothing was lost: every row of every table, the chain (verified, its first `size` events as they
    # were), once the read models whose schema changed (emptied by the upgrade, docs/migrations.md)
    # applied the log again; the head, signed once by the writer key as adopted (it predates writer
    # signatures); then one account per user of the old user table, recorded by the upgrade, each
    # commit signed.
    adopted = len(DEMO_USERS)
    assert lotline(["project", "--database-url", url]) == 0
    capsys.readouterr()
    after = row_counts(url)
    assert (after["alembic_version"], after["ledger_writer_signatures"]) == (1, 1 + adopted)
    # The EPCIS index, emptied by revision 0006 and built again by `lotline project`, now also names
    # each event's read point: the same events, more identifiers.
    grown = {"lotline_events", "ledger_chain", "audit_entry", "epcis_event_epc"}
    assert after["epcis_event_epc"] > rows_before["epcis_event_epc"]
    assert {t: after.get(t) for t in rows_before if t not in grown} == {
        t: n for t, n in rows_before.items() if t not in grown
    }
    assert (after["lotline_events"], after["ledger_chain"]) == (size + adopted, size + adopted)
    assert after["audit_entry"] == rows_before["audit_entry"] + adopted  # the audit trail shows them
    assert lotline(["verify", "--database-url", url]) == 0
    assert capsys.readouterr().out.startswith(f"OK: {size + adopted} events")
    assert _chain_head_at(url, size) == head
    size, head = _chain_head(url)

    # Users, tokens and keys of the previous release still work, through the CLI and the API.
    identity = Identity.open(url)
    try:
        assert {u.principal for u in identity.users()} == DEMO_USERS
        assert identity.authenticate(token).user.principal == "inspector"
    finally:
        identity.close()
    engine = open_engine(url)
    try:
        ring = KeyRing(engine, tmp_path / "keys", "lotline")
        assert [k.valid_until for k in ring.all()] == [None]
    finally:
        engine.dispose()
    assert lotline(["users", "--database-url", url, "list"]) == 0
    assert "recall_investigator [recall_investigator]" in capsys.readouterr().out
    settings = Settings(database_url=url, keys_dir=tmp_path / "keys", checkpoint_in_background=False,
                        projection_thread=True)
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").json()["chain_size"] == size
        ready = client.get("/ready", headers={"Authorization": f"Bearer {token}"})
        assert ready.status_code == 200 and ready.json()["read_models"]["lag"] == 0

    # The chain goes on from the previous release's head.
    ledger = Ledger.open(url)
    try:
        admin = Actor("admin", Role.ADMIN, "Ada Admin")
        ledger.handle(
            RegisterLocation(
                gln=with_check_digit("406999900099"), kind="depot", name="After the upgrade", country="DE"
            ),
            admin,
        )
    finally:
        ledger.close()
    assert lotline(["verify", "--database-url", url]) == 0
    assert capsys.readouterr().out.startswith(f"OK: {size + 1} events")
