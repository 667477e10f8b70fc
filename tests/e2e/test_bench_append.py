"""The append benchmark (scripts/bench_append.py) runs end to end at a tiny size, on both stores, and
reports the ledger against bare eventsourcing for each command shape. Nothing here is timed."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest

from scripts import bench_append
from tests.pgutil import connect_kwargs

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]

ROW = re.compile(r"^(package|ship|receipt)\s+(\d+)\s+[\d,]+\s+[\d,]+\s+(\d+\.\d\d)\s", re.M)


@pytest.fixture(params=BACKENDS)
def server_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the benchmark makes its own two stores: a directory for SQLite files, or a server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/bench.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


def test_bench_append_reports_each_shape_against_bare_eventsourcing(
    server_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Two measured rounds of 3 kits, then grown a little and measured again.
    code = bench_append.main(
        ["--database-url", server_url, "--rounds", "2", "--kits-per-batch", "3",
         "--sizes", "60", "--grow-batch", "5", "--keys-dir", str(tmp_path / "keys")]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "load average" in out
    # One table per store size; each has the three shapes with events per command and a ratio.
    tables = out.split("store size: ")[1:]
    assert len(tables) == 2
    for table in tables:
        rows = {shape: (int(per), float(ratio)) for shape, per, ratio in ROW.findall(table)}
        assert rows.keys() == {"package", "ship", "receipt"}
        assert rows["package"][0] == 3 + 3  # the run, two lots, three kits
        assert rows["ship"][0] == rows["receipt"][0] == 1 + 3
        assert all(ratio > 0 for _, ratio in rows.values())
    assert "append rate as the store grows" in out


def test_bench_append_leaves_no_store_behind(server_url: str, tmp_path: Path) -> None:
    before = _bench_stores(server_url, tmp_path)
    bench_append.main(["--database-url", server_url, "--rounds", "1", "--kits-per-batch", "2"])
    assert _bench_stores(server_url, tmp_path) == before


def _bench_stores(server_url: str, tmp_path: Path) -> set[str]:
    """The files in the SQLite directory, or the server's databases named like the benchmark's."""
    if server_url.startswith("sqlite"):
        return {p.name for p in tmp_path.iterdir()}
    with psycopg.connect(**connect_kwargs(server_url)) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'bench_append_%'").fetchall()
    return {r[0] for r in rows}
