"""Benchmark of the verifiable log: build the tree, export, verify offline, serve inclusion proofs.

    python -m scripts.bench_verify                         # a fresh demo store (scale 1, ~8,000 events)
    python -m scripts.bench_verify --scale 0.2             # smaller
    python -m scripts.bench_verify --copy-from /tmp/demo1m.db   # an existing SQLite store (copied first)
    python -m scripts.bench_verify --database-url postgresql://...   # an existing store, used in place
    python -m scripts.bench_verify --audit-only --database-url sqlite:////path/store.db --workdir DIR
                                # only the audits, timed: `lotline verify` on the store (in parts side
                                # by side, and alone with --jobs 1) and `lotline-verify` on an export of
                                # it, likewise (LOTLINE_KEYS_DIR: the store's keys)

Reports, for N events: the tree catch-up build, the export, the offline verification of the whole
export in a child process pinned to one core (wall time and peak RSS from getrusage), and, over the
same event bytes in the same run, the floors to compare it with: one SHA-256 pass over the bytes, the
two per-event SHA-256 calls every verifier must make, and the canonical (sorted-key JSON) encoding of
every event. Then the p50/p95/p99 latency of inclusion proofs served from the stored subtree hashes.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import random
import re
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ledger.application import Ledger
from ledger.chain import canonical_bytes
from ledger.config import Settings
from ledger.export import write_export
from ledger.merkle import verify_inclusion
from ledger.transparency import Transparency
from scripts.db import existing_store, upgrade_store


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_verify", description=__doc__.split("\n\n")[0])
    source = p.add_mutually_exclusive_group()
    source.add_argument("--scale", type=float, default=1.0, help="demo program size to generate (default 1)")
    source.add_argument("--copy-from", type=Path, metavar="SQLITE_FILE", help="copy this SQLite store")
    source.add_argument("--database-url", help="use this store in place (it gets the tree tables)")
    p.add_argument("--workdir", type=Path, help="where the store copy, keys and export go (default: temp)")
    p.add_argument("--proofs", type=int, default=2000, help="inclusion proofs to time (default 2000)")
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    p.add_argument("--audit-only", action="store_true",
                   help="with --database-url: time `lotline verify` and `lotline-verify` (of an export in "
                        "--workdir, made once) as child processes, with the load average; nothing else")
    args = p.parse_args(argv)
    if args.audit_only:
        if not args.database_url or not args.workdir:
            p.error("--audit-only needs --database-url and --workdir")
        return _audit_only(args.database_url, args.workdir, args.json)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="lotline-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {"cpu": _cpu_model()}
    url = _store(args, work, figures)
    settings = Settings(database_url=url, keys_dir=work / "keys", log_name="bench.lotline/log")
    log = Transparency.open(settings)
    try:
        _build(log, figures)
        export = work / "export"
        shutil.rmtree(export, ignore_errors=True)
        figures["export_s"] = _timed(lambda: write_export(log, export))
        figures["export_mb"] = round(sum(f.stat().st_size for f in export.iterdir()) / 1e6, 1)
        _verify(export, figures)
        _floors(export / "events.jsonl", figures)
        _proofs(log, args.proofs, figures)
    finally:
        log.close()
    _report(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if figures["verify_ok"] else 1


def _audit_only(url: str, work: Path, out: Path | None) -> int:
    """The figures issue 12 asks for: both audits' wall and CPU time on one store, and the machine's load."""
    work.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {"cpu": _cpu_model(), "cores": os.cpu_count(), "store": url}
    if url.startswith("sqlite:///"):
        figures["store_mb"] = round(Path(url.removeprefix("sqlite:///")).stat().st_size / 1e6)
    export = work / "export"
    if not (export / "manifest.json").exists():
        shutil.rmtree(export, ignore_errors=True)
        figures["export_s"] = _child(["-m", "scripts.cli", "export", "--out", str(export),
                                      "--database-url", url])[0]
    figures["export_mb"] = round(sum(f.stat().st_size for f in export.iterdir()) / 1e6)
    runs = {
        "lotline verify": ["-m", "scripts.cli", "verify", "--database-url", url],
        "lotline verify --jobs 1": ["-m", "scripts.cli", "verify", "--database-url", url, "--jobs", "1"],
        "lotline-verify": ["-m", "lotline_verify", str(export)],
        "lotline-verify --jobs 1": ["-m", "lotline_verify", str(export), "--jobs", "1"],
    }
    ok = True
    for label, command in runs.items():
        load_before = os.getloadavg()[0]
        wall, cpu, code, verdict = _child(command)
        figures[label] = {"wall_s": wall, "cpu_s": cpu, "ok": code == 0, "verdict": verdict,
                          "load_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]}
        ok = ok and code == 0
    print(f"store: {url}, {figures.get('store_mb', '?')} MB; export {figures['export_mb']} MB "
          f"({figures['cpu']}, {figures['cores']} cores)")
    for label in runs:
        f = figures[label]
        print(f"  {label:<23} {f['wall_s']:>7.2f} s wall  {f['cpu_s']:>7.2f} s CPU   load "
              f"{f['load_1min'][0]} -> {f['load_1min'][1]}   {f['verdict']}")
    if out:
        out.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if ok else 1


def _child(args: list[str]) -> tuple[float, float, int, str]:
    """Run `python ARGS`: wall seconds, CPU seconds (user + system) of the child, exit code, first line."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    child = subprocess.run([sys.executable, *args], capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    first = (child.stdout.strip().splitlines() or [child.stderr.strip()[-200:]])[0]
    return round(wall, 2), round(cpu, 2), child.returncode, first


def _store(args: argparse.Namespace, work: Path, figures: dict[str, Any]) -> str:
    if args.database_url:
        figures["store"] = "given"
        return existing_store(str(args.database_url))
    path = work / "bench.db"
    if path.exists():
        path.unlink()
    if args.copy_from:
        figures["store"] = f"copy of {args.copy_from}"
        with sqlite3.connect(args.copy_from) as src, sqlite3.connect(path) as dst:
            src.backup(dst)   # consistent even if the source is still being written
        return upgrade_store(f"sqlite:///{path}").url
    from scripts.demo import generate

    figures["store"] = f"demo scale {args.scale}"
    ledger = Ledger.open(upgrade_store(f"sqlite:///{path}").url)
    try:
        figures["generate_s"] = _timed(lambda: generate(ledger, scale=args.scale, progress=False))
    finally:
        ledger.close()
    return f"sqlite:///{path}"


def _build(log: Transparency, figures: dict[str, Any]) -> None:
    if log.keys.active() is None:
        log.keys.generate()
    figures["events"] = log.reader.head()[0]
    started = time.perf_counter()
    figures["tree_size"] = log.sync()
    figures["tree_build_s"] = round(time.perf_counter() - started, 2)
    figures["checkpoint_s"] = _timed(log.checkpoint)


def _verify(export: Path, figures: dict[str, Any]) -> None:
    """Run lotline-verify in a child pinned to one core: wall time (with interpreter start-up) and the
    peak RSS the child measures itself (getrusage after exec, so the forking parent is not counted)."""
    for label, extra in (("verify", []), ("verify_strict", ["--strict"])):
        started = time.perf_counter()
        child = subprocess.run(
            [sys.executable, "-m", "lotline_verify", str(export), *extra],
            capture_output=True, text=True, preexec_fn=_one_core,
        )
        figures[f"{label}_s"] = round(time.perf_counter() - started, 2)
        peak = re.search(r"peak memory (\d+) MB", child.stderr)
        figures[f"{label}_peak_mb"] = int(peak.group(1)) if peak else None
        figures[f"{label}_ok"] = child.returncode == 0
        figures[f"{label}_verdict"] = child.stdout.strip().splitlines()[0] if child.stdout else child.stderr
    figures["verify_ok"] = figures["verify_ok"] and figures["verify_strict_ok"]


def _one_core() -> None:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def _floors(events: Path, figures: dict[str, Any]) -> None:
    """Over the same bytes: one SHA-256 pass; two SHA-256 per event; canonical encoding of each event."""
    raw = events.read_bytes()
    figures["events_mb"] = round(len(raw) / 1e6, 1)
    started = time.perf_counter()
    hashlib.sha256(raw).digest()
    figures["sha256_stream_s"] = round(time.perf_counter() - started, 2)
    bodies = [line[line.index(b',"event":') + 9 : -1] for line in raw.split(b"\n") if line]
    del raw

    def two_hashes_per_event() -> None:
        prev, sha = bytes(32), hashlib.sha256
        for body in bodies:
            sha(b"\x00" + body).digest()
            prev = sha(prev + body).digest()

    figures["sha256_per_event_s"] = _timed(two_hashes_per_event)
    encode_s = parse_s = 0.0
    gc.disable()  # a million live byte strings make every collection slow: keep GC out of the figures
    for start in range(0, len(bodies), 20_000):
        t0 = time.perf_counter()
        docs = [json.loads(b) for b in bodies[start : start + 20_000]]
        t1 = time.perf_counter()
        for doc in docs:
            canonical_bytes(doc)
        encode_s += time.perf_counter() - t1
        parse_s += t1 - t0
    gc.enable()
    figures["canonical_encode_s"] = round(encode_s, 2)
    figures["json_parse_s"] = round(parse_s, 2)


def _proofs(log: Transparency, count: int, figures: dict[str, Any]) -> None:
    latest = log.latest()
    assert latest is not None
    size, root = latest.size, latest.checkpoint.root
    rnd = random.Random(1)
    seqs = [rnd.randint(1, size) for _ in range(count)]
    path_only, served = [], []
    for seq in seqs:
        t0 = time.perf_counter()
        log.tree.inclusion_proof(seq - 1, size)
        t1 = time.perf_counter()
        proof = log.inclusion_proof(seq, size)
        t2 = time.perf_counter()
        path_only.append(t1 - t0)
        served.append(t2 - t1)
        assert verify_inclusion(seq - 1, size, proof.leaf_hash, proof.path, root)
    figures["proof_path_ms"] = _percentiles(path_only)
    figures["proof_served_ms"] = _percentiles(served)


def _percentiles(samples: list[float]) -> dict[str, float]:
    q = statistics.quantiles([s * 1000 for s in samples], n=100)
    return {"p50": round(q[49], 3), "p95": round(q[94], 3), "p99": round(q[98], 3)}


def _timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return round(time.perf_counter() - started, 2)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def _report(f: dict[str, Any]) -> None:
    print(f"store: {f['store']}, {f['events']:,} events ({f['cpu']})")
    if "generate_s" in f:
        print(f"  generate the store                 {f['generate_s']:>8.2f} s")
    print(f"  build the tree (catch-up)          {f['tree_build_s']:>8.2f} s")
    print(f"  sign a checkpoint                  {f['checkpoint_s']:>8.2f} s")
    print(f"  export ({f['export_mb']} MB)              {f['export_s']:>8.2f} s")
    print(f"  lotline-verify, one core           {f['verify_s']:>8.2f} s   peak {f['verify_peak_mb']} MB"
          f"   {f['verify_verdict']}")
    print(f"  lotline-verify --strict            {f['verify_strict_s']:>8.2f} s   peak "
          f"{f['verify_strict_peak_mb']} MB")
    print(f"  floor: SHA-256 of the {f['events_mb']} MB    {f['sha256_stream_s']:>8.2f} s")
    print(f"  floor: 2 x SHA-256 per event       {f['sha256_per_event_s']:>8.2f} s")
    print(f"  floor: canonical encoding          {f['canonical_encode_s']:>8.2f} s   "
          f"(JSON parsing {f['json_parse_s']:.2f} s)")
    for key, label in (("proof_path_ms", "inclusion path"), ("proof_served_ms", "inclusion proof served")):
        p = f[key]
        print(f"  {label:<34} p50 {p['p50']} ms, p95 {p['p95']} ms, p99 {p['p99']} ms")


if __name__ == "__main__":
    sys.exit(main())
