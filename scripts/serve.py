"""`lotline serve`: run the API with uvicorn (the app comes from `api.app:create_app`)."""

from __future__ import annotations

import argparse
import os

import uvicorn


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("serve", help="run the HTTP API",
                       description="Serve the Lotline API with uvicorn on the configured store.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--database-url", help="override LOTLINE_DATABASE_URL")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.database_url:
        # Settings are read from the environment in each worker process; pass the override there.
        os.environ["LOTLINE_DATABASE_URL"] = args.database_url
    uvicorn.run("api.app:create_app", factory=True, host=args.host, port=args.port, workers=args.workers)
    return 0
