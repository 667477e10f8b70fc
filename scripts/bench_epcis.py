"""Benchmark of Lotline's EPCIS 2.0 layer: export, validation and capture rates; export memory.

    python -m scripts.bench_epcis [--scale 1] [--export-store sqlite:////path/big.db]

1. Writes a demo program of `--scale` into a fresh SQLite store (in a temporary directory).
2. Export: streams the whole program as one EPCISDocument (blinded) and counts events per second.
3. Validation: parses that document with Lotline's EPCIS models and recomputes every event hash.
4. Capture: captures the unblinded export into a second, empty store (all or nothing, one document).
5. With `--export-store`, streams an existing (big) store's export to /dev/null, sampling the
   process's resident memory every 10,000 events: constant memory shows as a flat line. With
   `--schema`, validates that export against GS1's EPCIS 2.0 JSON schema as it streams (exit 1 if
   any event or the document is invalid).
The export only reads `--export-store`; nothing is written there.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

from epcis import Epcis
from epcis.eventhash import document_hash_ids
from epcis.export import export_range
from epcis.models import EPCISDocument
from ledger.application import Ledger
from scripts.db import existing_store, upgrade_store
from scripts.demo import DEMO_ACTORS, generate

log = logging.getLogger("lotline.bench_epcis")


def rss_mib() -> float:
    """The resident set size of this process now (MiB), from /proc."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_program(scale: float, workdir: Path) -> dict[str, float]:
    """Export, validation and capture rates on a fresh demo program."""
    source_url, target_url = f"sqlite:///{workdir}/source.db", f"sqlite:///{workdir}/target.db"
    upgrade_store(source_url)
    upgrade_store(target_url)
    source = Ledger.open(source_url)
    summary = generate(source, scale=scale, progress=False)
    epcis = Epcis(source, source_url)
    began = time.perf_counter()
    blinded = "".join(epcis.events_between(None, None, blinded=True))
    export_s = time.perf_counter() - began
    doc = json.loads(blinded)
    count = len(doc["epcisBody"]["eventList"])
    began = time.perf_counter()
    EPCISDocument.model_validate(doc)
    validate_s = time.perf_counter() - began
    began = time.perf_counter()
    hashes = document_hash_ids(doc)
    hash_s = time.perf_counter() - began
    assert hashes == [e["eventID"] for e in doc["epcisBody"]["eventList"]]
    unblinded = "".join(epcis.events_between(None, None, blinded=False))
    target = Ledger.open(target_url)
    into = Epcis(target, target_url)
    began = time.perf_counter()
    result = into.capture(unblinded, list(DEMO_ACTORS.values()))
    capture_s = time.perf_counter() - began
    if not result.accepted:
        raise SystemExit(f"capture refused: {result.errors[:3]}")
    for closing in (into, target, epcis, source):
        closing.close()
    return {
        "ledger_events": summary.events, "epcis_events": count, "document_mib": len(blinded) / 2**20,
        "export_eps": count / export_s, "validate_eps": count / validate_s, "hash_eps": count / hash_s,
        "capture_eps": count / capture_s, "capture_ledger_events_per_s": result.ledger_events / capture_s,
    }


SCHEMA = Path(__file__).resolve().parents[2] / "shared" / "gs1-epcis" / "schema" / "EPCISDocument.schema.json"
"""GS1's EPCIS 2.0 JSON schema, where the checkout's neighbour keeps it (`--schema` to name another)."""


def bench_big_export(url: str, schema: Path | None = None) -> dict[str, float]:
    """Stream a big store's export to nowhere; RSS sampled every 10,000 events. With `schema`, also
    validate it against GS1's JSON schema as it streams: each event inside the document's opening (a
    document of that one event: the schema checks events one by one), then the whole document without
    its events (its header, master data included)."""
    validator = None
    if schema is not None:
        import jsonschema  # the test extra's: benchmarks run in the development environment

        document_schema = json.loads(schema.read_text(encoding="utf-8"))
        validator = jsonschema.Draft7Validator(
            document_schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
        )
    ledger = Ledger.open(existing_store(url))
    head, _ = ledger.chain.head()
    samples: list[float] = []
    size = invalid = 0
    opening: dict[str, object] = {}
    first_errors: list[str] = []
    began = time.perf_counter()
    # Chunks: the document's opening, one per event, the closing with the master data.
    for chunks, chunk in enumerate(export_range(ledger, blinded=True), start=1):
        size += len(chunk)
        if validator is not None:
            if chunks == 1:
                start, opening = chunk, json.loads(chunk + "]}}")
            elif chunk.startswith("]"):
                problems = list(validator.iter_errors(json.loads(start + chunk)))
                invalid += bool(problems)
                first_errors += [f"document: {e.message}" for e in problems[:3]]
            else:
                event = json.loads(chunk.lstrip(","))
                problems = list(validator.iter_errors({**opening, "epcisBody": {"eventList": [event]}}))
                if problems:
                    invalid += 1
                    if len(first_errors) < 5:
                        first_errors.append(f"{event.get('eventID')}: {problems[0].message}")
        if chunks % 10_000 == 0:
            samples.append(rss_mib())
            log.info("%d events, RSS %.0f MiB", chunks, samples[-1])
    events = chunks - 2
    seconds = time.perf_counter() - began
    ledger.close()
    figures: dict[str, object] = {
        "ledger_events": head, "epcis_events": events, "seconds": seconds, "export_eps": events / seconds,
        "ledger_events_per_s": head / seconds, "document_mib": size / 2**20,
        "rss_first_mib": samples[0] if samples else 0.0, "rss_last_mib": samples[-1] if samples else 0.0,
        "rss_max_sampled_mib": max(samples, default=0.0), "peak_rss_mib": peak_rss_mib(),
    }
    if validator is not None:
        figures |= {"schema_validated": True, "invalid": invalid, "first_errors": first_errors}
    return figures  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=1.0, help="demo program size (default 1: ~8,200 events)")
    p.add_argument("--export-store", help="also stream the export of this (big) store, e.g. a 1M demo's copy")
    p.add_argument("--schema", nargs="?", const=SCHEMA, type=Path,
                   help="validate the --export-store export against GS1's JSON schema as it streams "
                   f"(default file: {SCHEMA.resolve()})")
    p.add_argument("--skip-program", action="store_true", help="only the --export-store figures")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if not args.skip_program:
        with tempfile.TemporaryDirectory() as workdir:
            figures = bench_program(args.scale, Path(workdir))
        print(json.dumps({"program": figures}, indent=2))
    if args.export_store:
        big = bench_big_export(args.export_store, args.schema)
        print(json.dumps({"big_export": big}, indent=2))
        if big.get("invalid"):
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
