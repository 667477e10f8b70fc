"""The load benchmark runs end to end at a tiny size: it adds its program, serves, and reports every phase
and route, here with no 5xx (not timed: its figures belong in docs/benchmarks.md, not in assertions)."""

from __future__ import annotations

import json
from pathlib import Path

from scripts.bench_load import main


def test_the_load_benchmark_reports_every_phase_and_route(database_url: str, tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    args = ["--database-url", database_url, "--keys-dir", str(tmp_path / "keys"), "--workers", "1",
            "--sites", "2", "--kits-per-receipt", "3", "--peak-receipts", "4", "--peak-traces", "2",
            "--peak-seconds", "2", "--ramp", "1,2", "--ramp-seconds", "1", "--idle-rounds", "2",
            "--kit-sample", "20", "--out", str(out), "--server-log", str(tmp_path / "server.log")]
    assert main(args) == 0
    figures = json.loads(out.read_text())
    [run] = figures["runs"]
    assert [p["phase"] for p in run["phases"]] == [
        "idle", "idle, plain HTTP/1.1 client", "peak", "ramp x1", "ramp x2"
    ]
    idle, plain, peak, *ramp = run["phases"]
    for quiet in (idle, plain):  # the same requests through httpx and through one plain socket
        assert set(quiet["routes"]) == {"forward trace", "backward trace", "floor (404)"}
        assert quiet["routes"]["floor (404)"]["requests"] == quiet["routes"]["backward trace"]["requests"]
    assert {r: f["requests"] for r, f in plain["routes"].items()} == {
        r: f["requests"] for r, f in idle["routes"].items()
    }
    assert peak["routes"]["receipt"]["requests"] == 8 and ramp[1]["routes"]["receipt"]["requests"] == 8
    for phase in run["phases"]:
        for route, f in phase["routes"].items():
            expected = "404" if route == "floor (404)" else "200"
            assert f["statuses"] == {expected: f["requests"]}, (phase["phase"], route, f)
    # every receipt landed: 3 kit events and the shipment's, per receipt sent
    receipts = sum(p["routes"].get("receipt", {}).get("requests", 0) for p in run["phases"])
    assert run["events_after"] - run["events_before"] >= receipts * 4
