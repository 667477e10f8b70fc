"""`lotline serve`: run the API with uvicorn (the app comes from `api.app:served_app`).

`serve` also starts one projection worker (`lotline project --follow`) as a child process, whatever
`--workers` says, so exactly one process applies events to the read models; it is stopped (SIGTERM,
finishing its batch) when uvicorn exits. `--no-projection-worker` (or
`LOTLINE_PROJECTION_WORKER=false`) is for deployments that run the worker as a service of its own.

The schema is settled once, in this process, before uvicorn starts any worker: by default `serve`
upgrades the store as `lotline db upgrade` does (making it if needed); with `--no-upgrade` it
refuses a store whose schema is not current. The workers only check it, so `--workers N` on an
empty PostgreSQL never has N processes racing to create tables.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import uvicorn

from ledger.config import Settings
from scripts.db import existing_store, upgrade_store

KEEP_ALIVE_SECONDS = 75
"""How long an idle client connection is kept open (uvicorn's default is 5 s). A client that keeps
idle connections for 5 s itself (httpx's default) meets a server closing at the same moment: the
request it sends on the closing connection gets no answer (`ReadError`, "Server disconnected without
sending a response"): 5 in 480 requests sent after 4.98-5.02 s idle, none with 30 s; a load run at
four times the peak lost one such receipt. The server now outlasts common clients and proxies (nginx
keeps 75 s), so the client closes an idle connection first and opens a new one."""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("serve", help="run the HTTP API (upgrading the store's schema first)",
                       description="Serve the Lotline API with uvicorn on the configured store. First "
                       "makes the store or brings its schema up to this release (`lotline db upgrade`), "
                       "once, before the workers start; --no-upgrade refuses a store that is not current "
                       "instead (when migrations are a separate deployment step).")
    p.add_argument("--host", help="address to bind (default LOTLINE_HOST, else 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to bind (default LOTLINE_PORT, else 8000)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--database-url", help="override LOTLINE_DATABASE_URL")
    p.add_argument("--no-upgrade", action="store_true",
                   help="refuse a store whose schema is behind instead of upgrading it")
    p.add_argument("--no-projection-worker", action="store_true",
                   help="do not start a projection worker (one runs elsewhere, e.g. `lotline project "
                   "--follow` as a service of its own)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = Settings()
    url = args.database_url or settings.database_url
    if args.no_upgrade:
        existing_store(url)
    else:
        print(f"lotline serve: {upgrade_store(url, keys_dir=settings.keys_dir).describe()}", file=sys.stderr)
    if args.database_url:
        # Settings are read from the environment in each worker process; pass the override there.
        os.environ["LOTLINE_DATABASE_URL"] = args.database_url
    worker = None
    if settings.projection_worker and not args.no_projection_worker:
        worker = subprocess.Popen(  # the environment (database URL included) is passed on
            [sys.executable, "-m", "scripts.cli", "project", "--follow", "--database-url", url,
             "--poll-interval", str(settings.projection_poll_seconds), "--with-parent", str(os.getpid())]
        )
        print(f"lotline serve: projection worker started (pid {worker.pid})", file=sys.stderr)
    try:
        uvicorn.run("api.app:served_app", factory=True, host=args.host or settings.host,
                    port=settings.port if args.port is None else args.port, workers=args.workers,
                    timeout_keep_alive=KEEP_ALIVE_SECONDS)
    finally:
        if worker is not None:
            worker.terminate()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
    return 0
