"""`lotline serve --workers 3` on an empty store: the schema is made once, before the workers start.

`serve` runs `lotline db upgrade` in its own process first; each worker only checks the schema, so
three processes never race to create tables (the race the retries in the API once papered over).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from ledger import schema
from ledger.db import redacted, sqlite_path
from tests.e2e.serving import lotline_serve

VENV_BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_with_three_workers_makes_an_empty_store_once(empty_database_url: str, tmp_path: Path) -> None:
    url, port = empty_database_url, _free_port()
    env = {**os.environ, "LOTLINE_DATABASE_URL": url, "LOTLINE_KEYS_DIR": str(tmp_path / "keys")}
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [str(VENV_BIN / "lotline"), "serve", "--port", str(port), "--workers", "3"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            deadline, answered = time.monotonic() + 60, 0
            # Fresh connections land on the workers in turn: wait until several have answered.
            while answered < 6:
                assert server.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "the server did not start: " + log_path.read_text()
                try:
                    with httpx.Client(timeout=2) as client:
                        answered += client.get(f"http://127.0.0.1:{port}/health").status_code == 200
                except httpx.TransportError:
                    time.sleep(0.2)
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    output = log_path.read_text()
    assert output.count("applied revision 0001") == 1, output
    assert output.count("Started server process") == 3 and "Traceback" not in output, output
    assert schema.state(url).current
    # One projection worker for the three API workers, stopped with the server.
    assert output.count("projection worker started") == 1, output
    pid = int(output.split("projection worker started (pid ", 1)[1].split(")", 1)[0])
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_serve_no_upgrade_refuses_a_store_that_is_not_current(
    empty_database_url: str, tmp_path: Path
) -> None:
    url = empty_database_url
    done = subprocess.run(
        [str(VENV_BIN / "lotline"), "serve", "--no-upgrade", "--database-url", url],
        capture_output=True, text=True, timeout=60, env={**os.environ, "LOTLINE_KEYS_DIR": str(tmp_path)},
    )
    assert done.returncode == 2, done.stderr
    assert f"lotline db upgrade --database-url {redacted(url)}" in done.stderr
    path = sqlite_path(url)
    assert path is None or not path.exists()


def test_the_projection_worker_ends_with_a_single_worker_serve(
    empty_database_url: str, tmp_path: Path
) -> None:
    """With one API worker, uvicorn re-raises the SIGTERM it caught, so serve's clean-up never runs: the
    projection worker notices its parent is gone and stops by itself."""
    port = _free_port()
    keys = str(tmp_path / "keys")
    env = {**os.environ, "LOTLINE_DATABASE_URL": empty_database_url, "LOTLINE_KEYS_DIR": keys}
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [str(VENV_BIN / "lotline"), "serve", "--port", str(port), "--workers", "1"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while "projection worker started" not in log_path.read_text() or not _answers(port):
                assert server.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "the server did not start: " + log_path.read_text()
                time.sleep(0.2)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    output = log_path.read_text()
    pid = int(output.split("projection worker started (pid ", 1)[1].split(")", 1)[0])
    deadline = time.monotonic() + 15
    while Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text():
        assert time.monotonic() < deadline, f"the projection worker {pid} outlived serve: {output}"
        time.sleep(0.2)


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_an_idle_connection_outlives_a_clients_own_five_second_keep_alive(
    empty_database_url: str, tmp_path: Path
) -> None:
    """A request sent on a connection idle for a little over 5 s (httpx keeps idle connections 5 s)
    is answered on that connection: the server does not close it at the same moment the client
    reuses it (uvicorn's own default, 5 s, lost such requests without an answer)."""
    with lotline_serve(empty_database_url, tmp_path / "keys", tmp_path / "server.log") as base:
        port = int(base.rsplit(":", 1)[1])
        request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            for _ in range(2):
                conn.sendall(request)
                answer = _one_response(conn)
                assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
                time.sleep(6)


def _one_response(conn: socket.socket) -> bytes:
    """One HTTP/1.1 response with a Content-Length body read from `conn` (b"" if it was closed)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body
