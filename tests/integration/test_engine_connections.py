"""PostgreSQL engines ping a pooled connection only when it has been idle, and get over a server that
dropped their connections (ledger/db.py `_ping_when_idle`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from ledger import db
from ledger.db import open_engine


@pytest.fixture
def engine(new_store: Callable[[str, str], str]) -> Iterator[Engine]:
    made = open_engine(new_store("postgresql", "ledger"))
    try:
        yield made
    finally:
        made.dispose()


def _pings(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the dialect's pings (they go through the driver's cursor, not the engine's events)."""
    pinged: list[int] = []
    real = engine.dialect.do_ping

    def counting(dbapi_connection: object) -> bool:
        pinged.append(1)
        return real(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counting)
    return pinged


def _drop_connections(engine: Engine) -> int:
    """The server ends every other session on the engine's database (as a restart would)."""
    url = engine.url.set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    assert row is not None
    return int(row[0])


def _answer(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT 41 + 1")).scalar_one())


def test_a_connection_in_use_moments_ago_is_not_pinged(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _answer(engine) == 42  # a new connection, pooled now
    pinged = _pings(engine, monkeypatch)
    for _ in range(3):
        assert _answer(engine) == 42
    assert pinged == []  # SQLAlchemy's pre-ping would have pinged before each
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)
    assert _answer(engine) == 42
    assert pinged == [1]  # idle long enough: pinged


def test_an_idle_connection_the_server_dropped_is_replaced_unseen(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _answer(engine) == 42
    assert _drop_connections(engine) >= 1
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)  # every pooled connection counts as idle
    assert _answer(engine) == 42  # pinged, found dead, replaced: the caller sees nothing


def test_a_connection_dropped_moments_after_use_fails_once_then_the_pool_reconnects(engine: Engine) -> None:
    assert _answer(engine) == 42
    assert _drop_connections(engine) >= 1
    with pytest.raises(DBAPIError) as lost:
        _answer(engine)
    assert lost.value.connection_invalidated
    assert _answer(engine) == 42
