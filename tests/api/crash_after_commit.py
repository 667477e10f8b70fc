"""Sends one command to the app and dies by SIGKILL right after the ledger committed it, before any
answer leaves the process: `python -m tests.api.crash_after_commit URL KEYS_DIR TOKEN PATH KEY BODY`.
A test's stand-in for a server killed at the worst moment (tests/api/test_idempotency.py)."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from api.app import create_app
from ledger.application import Ledger
from ledger.config import Settings


def main() -> None:
    url, keys_dir, token, path, key, body = sys.argv[1:7]
    handle = Ledger.handle

    def handle_then_die(self: Ledger, *args: Any, **kwargs: Any) -> Any:
        handle(self, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    Ledger.handle = handle_then_die  # type: ignore[method-assign]
    settings = Settings(database_url=url, keys_dir=Path(keys_dir), checkpoint_in_background=False)
    with TestClient(create_app(settings)) as client:
        client.post(path, json=json.loads(body),
                    headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})
    raise SystemExit("the command returned: it should have been killed after its commit")


if __name__ == "__main__":
    main()
