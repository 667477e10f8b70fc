"""`lotline serve` as a real process on a free loopback port, for tests that talk to it over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def lotline_serve(database_url: str, keys_dir: Path, log_path: Path, *args: str) -> Iterator[str]:
    """`lotline serve [args]` on the store, its output in `log_path`; the base URL once `/health`
    answers (30 s at most), stopped with SIGTERM (then killed) when the block ends."""
    port = free_port()
    env = {**os.environ, "LOTLINE_DATABASE_URL": database_url, "LOTLINE_KEYS_DIR": str(keys_dir)}
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [str(VENV_BIN / "lotline"), "serve", "--host", "127.0.0.1", "--port", str(port), *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while not _healthy(base):
                assert server.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
            yield base
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False  # not listening yet
