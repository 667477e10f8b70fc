"""A whole program over HTTP, on both stores through the ASGI app and once through a real uvicorn
(two workers) on loopback: lots to site receipt, a recall investigation, and an export that the
offline verifier accepts."""

from __future__ import annotations

import subprocess
import sys
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
from tests.e2e.serving import lotline_serve

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


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`lotline serve --workers 2` on a free loopback port over a SQLite store; stopped at the end."""
    database_url = f"sqlite:///{tmp_path}/served.db"
    with lotline_serve(database_url, tmp_path / "keys", tmp_path / "server.log", "--workers", "2") as base:
        yield base, database_url


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
