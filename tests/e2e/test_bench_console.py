"""The console benchmark runs end to end: it signs in as a person, reads every API lot's trace page
and JSON trace through `lotline serve`, and reports each (not timed: its figures belong in
docs/benchmarks.md)."""

from __future__ import annotations

import json
from pathlib import Path

from ledger.application import Ledger
from scripts.bench_console import main
from scripts.db import upgrade_store
from tests.builders import Program


def test_the_console_benchmark_reads_every_trace_page(database_url: str, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    upgrade_store(database_url, keys_dir=keys)
    ledger = Ledger.open(database_url, keys_dir=keys)
    try:
        Program.released(ledger)
    finally:
        ledger.close()
    out = tmp_path / "console.json"
    assert main(["--database-url", database_url, "--keys-dir", str(keys), "--rounds", "2", "--out", str(out),
                 "--server-log", str(tmp_path / "server.log")]) == 0
    figures = json.loads(out.read_text())
    assert figures["lots"] == 1 and figures["rounds"] == 2
    page, answer = figures["routes"]["trace page with picture"], figures["routes"]["forward trace (JSON)"]
    assert page["requests"] == answer["requests"] == 2
    assert page["largest_bytes"] > 3000 and answer["largest_bytes"] > 500
    form = figures["routes"]["a depot's shipping form"]  # the program's depot holds its released kits
    assert form["requests"] == 100 and form["largest_bytes"] > 3000
