"""The store's schema: only `db upgrade` (and `demo`, `serve`) make a store; every other entry point
refuses one that does not exist or is not at this release's revision, and says what to run."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import MetaData

from api import idempotency
from api.app import create_app
from epcis.capture import metadata as epcis_capture_metadata
from epcis.jobs import metadata as epcis_jobs_metadata
from epcis.named import metadata as epcis_named_metadata
from ledger import checkpoints, identity, keys, merkle, schema, writer
from ledger.application import Ledger
from ledger.config import Settings
from ledger.db import open_engine, redacted, sqlite_path
from projections.epcis_index import metadata as epcis_index_metadata
from scripts.cli import main as lotline
from scripts.db import upgrade_store

STORE_COMMANDS = [
    ["verify"],
    ["project"],
    ["users", "{url}", "list"],
    ["keys", "list"],
    ["checkpoint", "list"],
    ["export", "--out", "{tmp}/export"],
    ["epcis", "{url}", "query"],
]


def _args(command: list[str], url: str, tmp_path: Path) -> list[str]:
    if "{url}" in command:
        return [a.replace("{url}", f"--database-url={url}") for a in command]
    return [*(a.replace("{tmp}", str(tmp_path)) for a in command), "--database-url", url]


@pytest.mark.parametrize("command", STORE_COMMANDS, ids=lambda c: c[0])
def test_commands_refuse_a_store_that_does_not_exist_and_make_none(
    command: list[str], empty_database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, shown = empty_database_url, redacted(empty_database_url)  # messages hide the password
    assert lotline(_args(command, url, tmp_path)) == 2
    refused = capsys.readouterr().err
    assert shown in refused and f"lotline db upgrade --database-url {shown}" in refused
    path = sqlite_path(url)
    if path is not None:
        assert not path.exists() and "does not exist" in refused
    else:
        assert "no Lotline schema" in refused
        assert schema.state(url).has_tables is False


def test_db_upgrade_makes_a_store_and_db_current_says_where_it_is(
    empty_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = empty_database_url
    assert lotline(["db", "current", "--database-url", url]) == 1
    capsys.readouterr()
    assert lotline(["db", "upgrade", "--database-url", url]) == 0
    assert capsys.readouterr().out.strip() == (
        f"upgraded the store at {redacted(url)} from revision (none) to {schema.head()}"
    )
    assert lotline(["db", "current", "--database-url", url]) == 0
    out = capsys.readouterr().out
    assert f"is at revision {schema.head()} (current)" in out and "read models: genealogy" in out
    assert lotline(["verify", "--database-url", url]) == 0
    assert capsys.readouterr().out.startswith("OK: 0 events")


def test_three_upgrades_at_once_migrate_a_new_store_once(empty_database_url: str) -> None:
    url = empty_database_url
    with ThreadPoolExecutor(3) as pool:
        done = [f.result(timeout=120) for f in [pool.submit(upgrade_store, url) for _ in range(3)]]
    # One of them made the store; the others, serialised behind its lock, found it current.
    assert sorted((d.before or "", d.after) for d in done) == [
        ("", schema.head()), (schema.head(), schema.head()), (schema.head(), schema.head())
    ]
    assert schema.state(url).current


def test_a_store_behind_this_release_is_refused_with_the_command_to_run(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    current = schema.head()
    monkeypatch.setattr(schema, "head", lambda: "9999")  # as if this release had a newer revision
    assert lotline(["verify", "--database-url", database_url]) == 2
    shown = redacted(database_url)
    assert capsys.readouterr().err.strip() == (
        f"lotline verify: the store at {shown} is at revision {current}, this Lotline needs 9999: "
        f"run `lotline db upgrade --database-url {shown}`"
    )
    with pytest.raises(schema.StoreNotReady, match="needs 9999"), TestClient(
        create_app(Settings(database_url=database_url))
    ):
        pass


def test_a_store_ahead_of_this_release_is_refused_and_not_touched(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = open_engine(database_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'f00d'")
    engine.dispose()
    assert lotline(["verify", "--database-url", database_url]) == 2
    assert "revision f00d, which this Lotline does not know" in capsys.readouterr().err
    assert lotline(["db", "upgrade", "--database-url", database_url]) == 2
    assert "does not know" in capsys.readouterr().err
    assert schema.state(database_url).revision == "f00d"


def test_another_programs_table_of_the_same_name_is_not_taken_for_ours(empty_database_url: str) -> None:
    url = empty_database_url
    engine = open_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE lotline_users (id INTEGER PRIMARY KEY, email TEXT)")
    engine.dispose()
    with pytest.raises(schema.StoreNotReady, match="lotline_users exists but is not the one Lotline makes"):
        upgrade_store(url)
    assert schema.state(url).revision is None


def test_the_tables_in_the_code_are_the_tables_the_migrations_make(database_url: str) -> None:
    # A change to a table in the code without a migration (or the reverse) shows up here.
    in_code = MetaData()
    for metadata in (identity.metadata, keys.metadata, checkpoints.metadata, merkle.metadata,
                     epcis_capture_metadata, epcis_named_metadata, epcis_jobs_metadata, epcis_index_metadata,
                     idempotency.metadata, writer.metadata):
        for table in metadata.tables.values():
            table.to_metadata(in_code)
    def ours(name: str | None, type_: str, parent: object) -> bool:
        # The event store (the library's SQL), the read models (rebuilt) and alembic_version are
        # compared elsewhere: tests/integration/test_previous_release.py.
        return type_ != "table" or name in in_code.tables

    engine = open_engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": ours})
            differences = compare_metadata(context, in_code)
    finally:
        engine.dispose()
    assert differences == []


def test_a_ledger_opened_on_a_store_never_upgraded_says_so(empty_database_url: str, tmp_path: Path) -> None:
    """Used as a library, not through the CLI (which checks the schema first): opening the ledger
    names the command to run, instead of its first write answering "the store is busy"."""
    if (path := sqlite_path(empty_database_url)) is not None:
        path.touch()  # an empty SQLite file: there, but no tables
    with pytest.raises(schema.StoreNotReady, match="run `lotline db upgrade`") as refused:
        Ledger.open(empty_database_url, keys_dir=tmp_path / "keys")
    assert refused.value.details["database_url"] == redacted(empty_database_url)
    assert "ledger_chain" in refused.value.details["cause"]
