"""Stores for tests, made the one way Lotline makes a store: `scripts.db.upgrade_store` (`db upgrade`).

`make_store(url)` runs it on a new database. The suite's fixtures (tests/conftest.py) make one
template store per backend and session with it and clone that per test (a file copy on SQLite,
`CREATE DATABASE ... TEMPLATE` on PostgreSQL): the same schema, without running the migrations
again for each of several hundred tests.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from ledger.db import open_engine, sqlite_path
from projections.db import read_side_url
from scripts.db import upgrade_store
from tests.pgutil import create_database


def make_store(database_url: str) -> str:
    """Make the store at `database_url` (a new SQLite file or an empty database); return the URL."""
    upgrade_store(database_url)
    return database_url


def clone_sqlite_store(template_url: str, path: Path) -> str:
    """A new SQLite store at `path`, a copy of the store at `template_url` and of its read models' file;
    its URL."""
    url = f"sqlite:///{path}"
    for source_url, target_url in ((template_url, url), (read_side_url(template_url), read_side_url(url))):
        source, target = sqlite_path(source_url), sqlite_path(target_url)
        assert source is not None and target is not None
        assert not Path(f"{source}-wal").exists(), "the template must be checkpointed"
        shutil.copyfile(source, target)
    return url


def clone_postgres_store(template_url: str, server_url: str) -> str:
    """A new PostgreSQL database on `server_url`, a copy of the store `template_url`; its URL."""
    template = make_url(template_url).database
    assert template is not None
    return create_database(server_url, template=template)


def _databases(database_url: str) -> list[str]:
    """The store's database, and on SQLite its read models' file when there is one."""
    read = read_side_url(database_url)
    path = sqlite_path(read)
    apart = read != database_url and path is not None and path.exists()
    return [database_url, read] if apart else [database_url]


def schema_of(database_url: str) -> dict[str, Any]:
    """Everything the schema of a store is made of, in a form two stores can be compared by: tables
    with their columns, keys, indexes and foreign keys; triggers; PostgreSQL functions and types. On
    SQLite, of both its files (a table named in both would show once)."""
    found: dict[str, Any] = {"tables": {}, "other": []}
    for url in _databases(database_url):
        one = _schema_of(url)
        found["tables"].update(one["tables"])
        found["other"] = sorted([*found["other"], *one["other"]])
    return found


def _schema_of(database_url: str) -> dict[str, Any]:
    engine = open_engine(database_url)
    try:
        with engine.connect() as conn:
            inspector = inspect(conn)
            tables = {
                name: {
                    "columns": [(c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
                                for c in inspector.get_columns(name)],
                    "primary key": inspector.get_pk_constraint(name)["constrained_columns"],
                    "unique": sorted(tuple(u["column_names"])
                                     for u in inspector.get_unique_constraints(name)),
                    "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                                      for i in inspector.get_indexes(name)),
                    "foreign keys": sorted((tuple(f["constrained_columns"]), f["referred_table"])
                                           for f in inspector.get_foreign_keys(name)),
                }
                for name in inspector.get_table_names()
            }
            if conn.dialect.name == "sqlite":
                other = conn.exec_driver_sql(
                    "SELECT type, name, sql FROM sqlite_master "
                    "WHERE type IN ('trigger', 'view') ORDER BY name"
                ).all()
            else:
                other = conn.exec_driver_sql(
                    "SELECT 'trigger', tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t "
                    "WHERE NOT tgisinternal "
                    "UNION ALL SELECT 'function', proname, prosrc FROM pg_proc p "
                    "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public' "
                    "UNION ALL SELECT 'type', typname, '' FROM pg_type t JOIN pg_namespace n "
                    "ON n.oid = t.typnamespace WHERE n.nspname = 'public' AND t.typtype = 'c' "
                    "AND t.typrelid NOT IN (SELECT oid FROM pg_class WHERE relkind IN ('r', 'p')) "
                    "ORDER BY 1, 2"
                ).all()
    finally:
        engine.dispose()
    return {"tables": tables, "other": [tuple(row) for row in other]}


def row_counts(database_url: str) -> dict[str, int]:
    """How many rows each table of the store holds (on SQLite, in both its files)."""
    counts: dict[str, int] = {}
    for url in _databases(database_url):
        engine = open_engine(url)
        try:
            with engine.connect() as conn:
                for name in inspect(conn).get_table_names():
                    assert name not in counts, f"table {name} in both files of the store"
                    counts[name] = int(conn.exec_driver_sql(f'SELECT COUNT(*) FROM "{name}"').scalar_one())
        finally:
            engine.dispose()
    return counts
