# TEMPORARY probe for scripts/test.sh verification; deleted afterwards.
import psycopg
import pytest

from tests.pgutil import connect_kwargs


def test_infra_probe(database_url: str, request: pytest.FixtureRequest) -> None:
    print("URL:", database_url)
    if database_url.startswith("postgresql"):
        assert "postgres" in request.node.keywords  # marker applied
        with psycopg.connect(**connect_kwargs(database_url)) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
            db = conn.execute("select current_database()").fetchone()
            tables = conn.execute(
                "select count(*) from information_schema.tables where table_schema='public'"
            ).fetchone()
            print("DB:", db, "public tables:", tables)
            assert db is not None and db[0].startswith("lotline_t_")
            assert tables == (0,)
            conn.execute("create table probe (x int)")
    else:
        assert database_url.startswith("sqlite:////")


def test_infra_probe_sleep(database_url: str) -> None:
    import os
    import time

    if os.environ.get("PROBE_SLEEP"):
        time.sleep(60)
