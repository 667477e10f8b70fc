"""Suite-wide fixtures: database URLs for both supported backends.

Use ``database_url`` in a test to run it twice, once on a new SQLite store and once
on a new PostgreSQL store, each at the schema head and without events (made by
``lotline db upgrade``'s own code, see tests/stores.py). ``empty_database_url`` is
the same without the schema: a SQLite file that does not exist yet, an empty
PostgreSQL database. The PostgreSQL server comes from ``LOTLINE_TEST_POSTGRES_URL``,
which ``scripts/test.sh`` sets after starting a throw-away cluster. Deselect the
PostgreSQL half with ``-m "not postgres"``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.pgutil import create_database, drop_database
from tests.stores import clone_postgres_store, clone_sqlite_store, make_store

POSTGRES_URL_ENV = "LOTLINE_TEST_POSTGRES_URL"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of a PostgreSQL server/database whose role may CREATE DATABASE.

    Skips the test when unset -- except under CI, where that is an error so a
    misconfigured pipeline cannot silently skip every PostgreSQL test.
    """
    url = os.environ.get(POSTGRES_URL_ENV, "").strip()
    if url:
        return url
    message = f"{POSTGRES_URL_ENV} is not set (run `bash scripts/test.sh`)"
    if _in_ci():
        pytest.fail(f"{message}; refusing to skip PostgreSQL tests under CI", pytrace=False)
    pytest.skip(message)


BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite store made by `lotline db upgrade`'s code once per session, cloned by `new_store`."""
    return make_store(f"sqlite:///{tmp_path_factory.mktemp('template')}/store.db")


@pytest.fixture(scope="session")
def postgres_template(postgres_url: str) -> Iterator[str]:
    """A PostgreSQL store made by `lotline db upgrade`'s code once per session, cloned by `new_store`."""
    url = make_store(create_database(postgres_url))
    try:
        yield url
    finally:
        drop_database(url)


@pytest.fixture
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str, str], str]]:
    """`new_store(backend, name)`: the URL of another new store at the schema head on that backend."""
    made: list[str] = []

    def new(backend: str, name: str = "ledger") -> str:
        if backend == "sqlite":
            return clone_sqlite_store(request.getfixturevalue("sqlite_template"), tmp_path / f"{name}.db")
        # Looked up lazily so SQLite runs never depend on (or skip for) PostgreSQL.
        url = clone_postgres_store(request.getfixturevalue("postgres_template"),
                                   request.getfixturevalue("postgres_url"))
        made.append(url)
        return url

    yield new
    for url in made:
        drop_database(url)


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, new_store: Callable[[str, str], str]) -> str:
    """A URL for a new store without events, at the schema head, once per backend."""
    return new_store(request.param, "ledger")


@pytest.fixture(params=BACKENDS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL for a database without Lotline's schema: a SQLite file not made yet, or an empty
    PostgreSQL database; once per backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/empty.db"
        return
    url = create_database(request.getfixturevalue("postgres_url"))
    try:
        yield url
    finally:
        drop_database(url)


@pytest.fixture(autouse=True, scope="session")
def _keys_outside_the_checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No test may leave a signing key in the working directory: point the default keys dir elsewhere."""
    previous = os.environ.get("LOTLINE_KEYS_DIR")
    os.environ["LOTLINE_KEYS_DIR"] = str(tmp_path_factory.mktemp("keys"))
    yield
    if previous is None:
        os.environ.pop("LOTLINE_KEYS_DIR", None)
    else:
        os.environ["LOTLINE_KEYS_DIR"] = previous
