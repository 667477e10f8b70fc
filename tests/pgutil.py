"""Throw-away PostgreSQL databases for tests.

``create_database(url)`` makes a fresh, empty database on the server ``url``
points at and returns a URL for it; ``drop_database(that_url)`` removes it.
URLs may use ``postgresql://`` or a SQLAlchemy driver form such as
``postgresql+psycopg://``; the returned URL keeps the caller's scheme.
"""

from __future__ import annotations

import secrets
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL, make_url

#: Every database made here starts with this; ``drop_database`` refuses others,
#: so a mistyped URL can never drop a real database.
TEST_DB_PREFIX = "lotline_t_"


def connect_kwargs(url: str | URL, *, dbname: str | None = None) -> dict[str, Any]:
    """psycopg.connect() keyword arguments for ``url`` (optionally another database)."""
    u = make_url(url)
    kwargs: dict[str, Any] = {
        "host": u.host,
        "port": u.port,
        "user": u.username,
        "password": u.password,
        "dbname": dbname or u.database,
    }
    # Pass libpq query options through (sslmode=..., host=/socket/dir, ...).
    for key, value in u.query.items():
        kwargs[key] = value if isinstance(value, str) else value[-1]
    return {k: v for k, v in kwargs.items() if v is not None}


def create_database(url: str, *, template: str = "template0") -> str:
    """Create an empty database ``lotline_t_<hex>`` on ``url``'s server; return its URL.

    Connects to the database named in ``url`` (it must exist) as a role with
    CREATEDB. ``template0`` is pristine and never has other sessions attached,
    so concurrent creations (e.g. pytest-xdist) do not collide.
    """
    name = TEST_DB_PREFIX + secrets.token_hex(8)
    # CREATE DATABASE cannot run inside a transaction block: autocommit.
    with psycopg.connect(**connect_kwargs(url), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
        )
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str, *, maintenance_dbs: tuple[str, ...] = ("postgres", "template1")) -> None:
    """Drop the database ``url`` names (if it exists), disconnecting its sessions.

    Only databases created by :func:`create_database` may be dropped.
    """
    name = make_url(url).database
    if not name or not name.startswith(TEST_DB_PREFIX):
        raise ValueError(f"refusing to drop {name!r}: not a {TEST_DB_PREFIX}* test database")
    # We cannot be connected to the database we drop; use a maintenance DB.
    last_error: psycopg.OperationalError | None = None
    for maintenance_db in maintenance_dbs:
        try:
            conn = psycopg.connect(**connect_kwargs(url, dbname=maintenance_db), autocommit=True)
        except psycopg.OperationalError as exc:
            last_error = exc
            continue
        with conn:
            # FORCE (PostgreSQL 13+) terminates sessions the test left open.
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        return
    assert last_error is not None
    raise last_error
