"""The console's investigator pages through HTTP, where a person's browser stands: a lot's forward
trace page with its genealogy picture (`/console/trace/lots/{id}`, the page as the browser gets it)
and the JSON forward trace beside it (`/trace/lots/{id}/forward`, the same read without the page), one
request at a time over a kept-alive connection, every API lot of the store `--rounds` times; then each
recall's dashboard page and the status its open page asks for every few seconds (at least 100 each);
then the biggest pages of places: the kits of the depot holding the most available kits (a page of
100) and its shipping form (every available kit, up to 500), and the recall task list of the place with
the most kits of a recall (100 each).

    python -m scripts.bench_console --database-url sqlite:////tmp/copy-of-1m.db --keys-dir /path/keys

It adds one recall investigator with a password to the store (give it a copy), starts `lotline serve`
on a free loopback port, signs in as a person does (the sign-in form, its CSRF token, the session
cookie) and waits for the read models to reach the ledger's head. Prints p50/p95/p99 and the largest
page per route; `--out` writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from ledger.identity import Identity
from ledger.values import Role
from scripts.bench_load import BY, caught_up, load_average, serve, stop, traced


def sign_in(client: httpx.Client, principal: str, password: str) -> None:
    form = client.get("/console/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    if csrf is None:
        raise SystemExit("bench_console: no sign-in form")
    answer = client.post("/console/sign-in", data={"principal": principal, "password": password,
                                                  "csrf": csrf.group(1)})
    if answer.status_code != 200 or "sign-out" not in answer.text:
        raise SystemExit(f"bench_console: sign-in failed ({answer.status_code})")


def measure(client: httpx.Client, paths: list[str], rounds: int, **kwargs: Any) -> dict[str, Any]:
    for path in paths:  # warm-up
        client.get(path, **kwargs)
    times, sizes = [], []
    for _ in range(rounds):
        for path in paths:
            began = time.perf_counter()
            answer = client.get(path, **kwargs)
            times.append((time.perf_counter() - began) * 1000)
            if answer.status_code != 200:
                raise SystemExit(f"bench_console: {path} answered {answer.status_code}")
            sizes.append(len(answer.content))
    q = statistics.quantiles(times, n=100)
    return {"requests": len(times), "p50_ms": round(q[49], 1), "p95_ms": round(q[94], 1),
            "p99_ms": round(q[98], 1), "largest_bytes": max(sizes)}


def busiest_depot(client: httpx.Client, token: str) -> str | None:
    """The depot holding the most available kits (the one whose shipping form lists the most)."""
    listed = client.get("/console/places").text
    depots = re.findall(r'<tr id="place-([0-9a-f-]{36})"><td><a [^>]*>[^<]*</a></td><td>depot</td>', listed)
    counts = {
        d: client.get(
            f"/locations/{d}/kits", params={"status": "available", "limit": 1},
            headers={"Authorization": f"Bearer {token}"},
        ).json()["total"]
        for d in depots
    }
    return max(counts, key=lambda d: counts[d]) if counts else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--database-url", required=True, help="a COPY of the store: a user is added to it")
    p.add_argument("--keys-dir", type=Path, required=True, help="the store's writer key's directory")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path)
    p.add_argument("--server-log", type=Path, default=Path("bench_console.server.log"))
    args = p.parse_args(argv)

    principal, password = f"bench-console-{secrets.token_hex(3)}", secrets.token_urlsafe(16)
    identity = Identity.open(args.database_url, keys_dir=args.keys_dir)
    try:
        identity.add_user(
            principal, name="Rita Recall", role=Role.RECALL_INVESTIGATOR, password=password, **BY
        )
        token = identity.issue_token(principal, **BY)
    finally:
        identity.close()
    server, base = serve(args.database_url, 1, args.keys_dir, args.server_log)
    try:
        caught_up(base, token, 900)
        lots, _ = traced(args.database_url, 0, 0)
        with httpx.Client(base_url=base, timeout=60, follow_redirects=True) as client:
            sign_in(client, principal, password)
            pages = [f"/console/trace/lots/{i}" for i in lots]
            answers = [f"/trace/lots/{i}/forward" for i in lots]
            listed = client.get("/console/recalls").text
            recalls = list(dict.fromkeys(re.findall(r'href="/console/recalls/([0-9a-f-]{36})"', listed)))
            figures = {
                "trace page with picture": measure(client, pages, args.rounds),
                "forward trace (JSON)": measure(
                    client, answers, args.rounds, headers={"Authorization": f"Bearer {token}"}
                ),
            }
            if recalls:  # the demo ends with a recall in progress
                boards = [f"/console/recalls/{r}" for r in recalls]
                rounds = max(args.rounds, 100 // len(boards))
                figures["recall dashboard"] = measure(client, boards, rounds)
                figures["recall dashboard, live update"] = measure(
                    client, [f"{b}/status.json" for b in boards], rounds
                )
                places = [  # (kits, place, recall) of every place of every recall
                    (p["kits"], p["place_id"], r)
                    for r in recalls
                    for p in client.get(f"/console/recalls/{r}/status.json").json()["places"]
                ]
                if places:
                    _, site, recall = max(places)
                    figures["a place's recall task list"] = measure(
                        client, [f"/console/sites/{site}/recalls/{recall}"], 100
                    )
            depot = busiest_depot(client, token)
            if depot is not None:
                place = f"/console/sites/{depot}"
                figures["a depot's kits (a page)"] = measure(client, [f"{place}/kits"], 100)
                figures["a depot's shipping form"] = measure(client, [f"{place}/steps/ship"], 100)
    finally:
        stop(server)
    print(f"{len(lots)} API lots x {args.rounds} rounds, 1 API worker, load average {load_average()}")
    for route, f in figures.items():
        print(f"  {route:<32} p50 {f['p50_ms']:>7.1f} ms  p95 {f['p95_ms']:>7.1f} ms"
              f"  p99 {f['p99_ms']:>7.1f} ms  largest {f['largest_bytes']:,} bytes")
    if args.out:
        figures_json = {"lots": len(lots), "rounds": args.rounds, "routes": figures}
        args.out.write_text(json.dumps(figures_json, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
