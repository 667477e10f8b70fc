"""The EPCIS 2.0 query routes through HTTP, where a trading partner stands: one request at a time over a
kept-alive connection, each route `--requests` times after a warm-up, against `lotline serve` on a
copy of a store whose EPCIS index the projection worker has built (run `lotline project` on the copy
first, or the server's worker builds it while the benchmark waits: ~4 minutes for 1M events).

    python -m scripts.bench_epcis_query --database-url sqlite:////tmp/copy-of-1m.db --keys-dir /path/keys

It adds a recall investigator to the store (give it a copy) and one named query. Routes: a page of 100
shipping events; a kit's events (`MATCH_anyEPC`); an event by its eventID; the rarest action and the
error declarations (`EQ_action=DELETE`, `EXISTS_errorDeclaration`); the newest 100 by event time; the
first page of each top-level list (epcs, readPoints, bizLocations, bizSteps, dispositions); the named
query's events; and, as the floor, `OPTIONS /epcis`. Prints p50/p95/p99 per route; `--out` writes
them as JSON.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from ledger.identity import Identity
from ledger.values import Role
from scripts.bench_console import measure
from scripts.bench_load import BY, caught_up, load_average, serve, stop


def indexed(base: str, headers: dict[str, str], timeout: float) -> int:
    """Wait until the EPCIS index has reached the ledger's head; the head."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = httpx.get(f"{base}/ready", headers=headers, timeout=30).json()
        head = ready["chain_size"]
        if ready["read_models"].get("epcis_index") == head:
            return int(head)
        time.sleep(2)
    raise SystemExit(f"bench_epcis_query: the EPCIS index did not reach the head within {timeout:.0f} s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--database-url", required=True, help="a COPY of the store: a user is added to it")
    p.add_argument("--keys-dir", type=Path, required=True, help="the store's writer key's directory")
    p.add_argument("--requests", type=int, default=100, help="requests per route (default 100)")
    p.add_argument("--out", type=Path)
    p.add_argument("--server-log", type=Path, default=Path("bench_epcis_query.server.log"))
    args = p.parse_args(argv)

    principal = f"bench-epcis-{secrets.token_hex(3)}"
    identity = Identity.open(args.database_url, keys_dir=args.keys_dir)
    try:
        identity.add_user(principal, name="Ines Partner", role=Role.RECALL_INVESTIGATOR, **BY)
        token = identity.issue_token(principal, **BY)
    finally:
        identity.close()
    headers = {"Authorization": f"Bearer {token}"}
    server, base = serve(args.database_url, 1, args.keys_dir, args.server_log)
    try:
        caught_up(base, token, 900)
        head = indexed(base, headers, 1800)
        with httpx.Client(base_url=base, timeout=60, headers=headers) as client:
            shipped = client.get("/epcis/events", params={"EQ_bizStep": "shipping", "perPage": 100}).json()
            events = shipped["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
            event_id = events[len(events) // 2]["eventID"]
            kit = next(e["epcList"][0] for e in events if e.get("epcList"))
            name = f"bench-{secrets.token_hex(3)}"
            client.post("/epcis/queries", json={"name": name, "query": {"EQ_bizStep": "receiving"}})
            routes = {
                "shipping events, a page of 100": "/epcis/events?EQ_bizStep=shipping&perPage=100",
                "a kit's events (MATCH_anyEPC)": f"/epcis/events?MATCH_anyEPC={quote(kit, safe='')}",
                "an event by its eventID": f"/epcis/events/{quote(event_id, safe='')}",
                "EQ_action=DELETE, 100": "/epcis/events?EQ_action=DELETE&perPage=100",
                "EXISTS_errorDeclaration, 100": "/epcis/events?EXISTS_errorDeclaration=&perPage=100",
                "newest 100 by eventTime": "/epcis/events?orderBy=eventTime&perPage=100",
                "/epcis/epcs, first 100": "/epcis/epcs?perPage=100",
                "/epcis/readPoints": "/epcis/readPoints",
                "/epcis/bizLocations": "/epcis/bizLocations",
                "/epcis/bizSteps": "/epcis/bizSteps",
                "/epcis/dispositions": "/epcis/dispositions",
                "a named query's events, 100": f"/epcis/queries/{name}/events?perPage=100",
            }
            figures: dict[str, Any] = {
                route: measure(client, [path], args.requests) for route, path in routes.items()
            }
            figures["floor: OPTIONS /epcis"] = _options(client, args.requests)
    finally:
        stop(server)
    print(f"EPCIS routes at chain position {head:,}, 1 API worker, load average {load_average()}")
    for route, f in figures.items():
        print(f"  {route:<34} p50 {f['p50_ms']:>6.1f} ms  p95 {f['p95_ms']:>6.1f} ms"
              f"  p99 {f['p99_ms']:>6.1f} ms")
    if args.out:
        args.out.write_text(json.dumps({"head": head, "routes": figures}, indent=2))
    return 0


def _options(client: httpx.Client, requests: int) -> dict[str, Any]:
    times = []
    for _ in range(requests + 5):
        began = time.perf_counter()
        if client.options("/epcis").status_code != 204:
            raise SystemExit("bench_epcis_query: OPTIONS /epcis did not answer 204")
        times.append((time.perf_counter() - began) * 1000)
    q = statistics.quantiles(times[5:], n=100)
    return {"requests": requests, "p50_ms": round(q[49], 1), "p95_ms": round(q[94], 1),
            "p99_ms": round(q[98], 1)}


if __name__ == "__main__":
    raise SystemExit(main())
