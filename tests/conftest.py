"""Suite-wide fixtures: database URLs for both supported backends.

Use ``database_url`` in a test to run it twice, once on SQLite and once on a
fresh, empty PostgreSQL database. The PostgreSQL server comes from
``LOTLINE_TEST_POSTGRES_URL``, which ``scripts/test.sh`` sets after starting a
throw-away cluster. Deselect the PostgreSQL half with ``-m "not postgres"``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pgutil import create_database, drop_database

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


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL for an empty ledger database, once per backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/ledger.db"
        return
    # Looked up lazily so SQLite runs never depend on (or skip for) PostgreSQL.
    server_url: str = request.getfixturevalue("postgres_url")
    url = create_database(server_url)
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
