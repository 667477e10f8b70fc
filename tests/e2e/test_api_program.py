"""A whole program over HTTP, on both stores through the ASGI app and once through a real uvicorn
(two workers) on loopback: lots to site receipt, a recall investigation, and an export that the
offline verifier accepts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ledger.application import Ledger
from ledger.config import Settings
from ledger.identity import Identity
from ledger.verify import verify_chain
from lotline_verify.__main__ import main as lotline_verify
from tests.api.conftest import WORKER_THREAD
from tests.e2e.http_program import KITS_PER_ARM, run_program

VENV_BIN = Path(sys.executable).parent


def check(result: dict[str, Any], database_url: str, keys_dir: Path) -> None:
    """What a batch record would say at the end: counts, recall reach, a verified chain and export."""
    impact, kits = result["impact"], result["kits"]
    # unblinded, the API lot reached only the active arm: half the kits
    assert impact["total_kits"] == kits["total"] == KITS_PER_ARM
    assert {s["site"]["id"] for s in impact["sites_to_notify"]} == {result["site"]}
    at_site = [k for k in kits["items"] if k["place"] and k["place"]["id"] == result["site"]]
    assert len(at_site) == 10 and all(k["treatment"] == "A" for k in kits["items"])
    assert result["refused"]["code"] == "lot_not_usable"
    ledger = Ledger.open(database_url, keys_dir=keys_dir)  # the server's writer key
    try:
        report = verify_chain(ledger.chain)
    finally:
        ledger.close()
    assert report.ok and report.count == result["events"] == result["head"]["size"]
    assert result["verification"]["ok"] and result["head"]["head_hash"] == report.head_hash
    assert lotline_verify([str(result["export"]), "--quiet"]) == 0


def test_a_whole_program_over_http_through_the_asgi_app(database_url: str, tmp_path: Path) -> None:
    identity = Identity.open(database_url, keys_dir=tmp_path / "keys", scrypt_n=2**10)
    settings = Settings(database_url=database_url, keys_dir=tmp_path / "keys", **WORKER_THREAD)
    try:
        with TestClient(create_app(settings)) as client:
            result = run_program(client, identity, tmp_path / "export")
    finally:
        identity.close()
    check(result, database_url, tmp_path / "keys")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`lotline serve --workers 2` on a free loopback port over a SQLite store; stopped at the end."""
    database_url = f"sqlite:///{tmp_path}/served.db"
    port = free_port()
    env = {**os.environ, "LOTLINE_DATABASE_URL": database_url, "LOTLINE_KEYS_DIR": str(tmp_path / "keys")}
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 (open while the server runs, closed below)
    server = subprocess.Popen(
        [str(VENV_BIN / "lotline"), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        yield base, database_url
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def test_a_whole_program_against_uvicorn_with_two_workers_on_loopback(
    served: tuple[str, str], tmp_path: Path
) -> None:
    base, database_url = served
    identity = Identity.open(database_url, keys_dir=tmp_path / "keys", scrypt_n=2**10)  # the server's
    try:
        with httpx.Client(base_url=base, timeout=60) as client:
            result = run_program(client, identity, tmp_path / "export")
    finally:
        identity.close()
    check(result, database_url, tmp_path / "keys")
    # the installed offline verifier, as an inspector would run it
    verified = subprocess.run(
        [str(VENV_BIN / "lotline-verify"), str(tmp_path / "export")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verified.returncode == 0 and "lotline-verify: OK" in verified.stdout, (
        verified.stdout + verified.stderr
    )
