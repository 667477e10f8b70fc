"""The commands an operator and an inspector run: keys, checkpoint, witness, export, lotline-verify."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lotline_verify.__main__ import main as lotline_verify
from scripts.cli import main as lotline
from tests.merkle_builders import ORIGIN, supply_log


def vkey_of_active(capsys: pytest.CaptureFixture[str]) -> str:
    assert lotline(["keys", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    active = [i for i, line in enumerate(lines) if line.startswith("active")]
    return lines[active[-1] + 1].strip()


def test_operator_and_inspector_commands_end_to_end(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOTLINE_DATABASE_URL", database_url)
    monkeypatch.setenv("LOTLINE_KEYS_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("LOTLINE_LOG_NAME", ORIGIN)
    state = tmp_path / "witness.json"
    with supply_log(database_url, tmp_path / "keys", events=12) as (supply, _):
        # the operator makes a key and signs the head
        assert lotline(["keys", "generate"]) == 0
        assert lotline(["keys", "generate"]) == 1                   # one active key at a time
        first_key = vkey_of_active(capsys)
        assert lotline(["checkpoint", "make"]) == 0
        assert capsys.readouterr().out.startswith(f"{ORIGIN}\n12\n")
        # the inspector's witness watches the log and cosigns
        assert lotline(["witness", "init", "--state", str(state), "--name", "inspector.test/w1",
                        "--origin", ORIGIN, "--log-key", first_key]) == 0
        assert lotline(["witness", "run", "--state", str(state), "--database-url", database_url]) == 0
        assert lotline(["checkpoint", "show"]) == 0
        assert "\u2014 inspector.test/w1 " in capsys.readouterr().out
        # the key is rotated; the witness must be told the new key before it cosigns again
        supply.grow(5)
        assert lotline(["keys", "rotate"]) == 0
        second_key = vkey_of_active(capsys)
        assert lotline(["checkpoint", "make"]) == 0
        assert lotline(["witness", "run", "--state", str(state), "--database-url", database_url]) == 1
        assert "REFUSED" in capsys.readouterr().err
        assert lotline(["witness", "trust", "--state", str(state), "--log-key", second_key]) == 0
        assert lotline(["witness", "run", "--state", str(state), "--database-url", database_url]) == 0
        assert lotline(["checkpoint", "audit"]) == 0
        assert lotline(["checkpoint", "list"]) == 0
        listing = capsys.readouterr().out
        assert "inspector.test/w1" in listing and listing.index("17") < listing.index("12")
        # an event's proof bundle and the export, checked offline with the witness's checkpoint
        assert lotline(["checkpoint", "prove", "4"]) == 0
        bundle = tmp_path / "bundle.json"
        bundle.write_text(capsys.readouterr().out)
        assert lotline_verify(["--bundle", str(bundle), "--log-key", first_key, "--log-key", second_key]) == 0
        assert lotline(["export", "--out", str(tmp_path / "export")]) == 0
        trusted = tmp_path / "trusted.txt"
        trusted.write_text(json.loads(state.read_text())["checkpoint"])
        assert lotline_verify([str(tmp_path / "export"), "--trusted", str(trusted), "--quiet",
                               "--log-key", first_key, "--log-key", second_key]) == 0
        assert "cosigned     by inspector.test/w1 up to size 17" in capsys.readouterr().out
        assert lotline(["export", "--out", str(tmp_path / "export")]) == 1   # never over an export


def test_the_offline_verifier_imports_nothing_but_the_standard_library_and_cryptography() -> None:
    code = (
        "import sys, lotline_verify, lotline_verify.__main__\n"
        "third = {m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names)\n"
        "print(sorted(third))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(json.loads(out.replace("'", '"')))
    assert "cryptography" in loaded and "lotline_verify" in loaded
    never = {"ledger", "scripts", "projections", "api", "sqlalchemy", "eventsourcing", "psycopg", "pydantic"}
    assert not loaded & never, out


def test_prove_says_when_the_next_checkpoint_is_due_or_signs_one_with_sign_now(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOTLINE_DATABASE_URL", database_url)
    monkeypatch.setenv("LOTLINE_KEYS_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("LOTLINE_LOG_NAME", ORIGIN)
    with supply_log(database_url, tmp_path / "keys", events=6) as (supply, _):
        assert lotline(["keys", "generate"]) == 0
        assert lotline(["checkpoint", "make"]) == 0
        supply.grow(2)
        capsys.readouterr()
        assert lotline(["checkpoint", "prove", "8"]) == 1
        err = capsys.readouterr().err
        covered = "(the newest covers events 1..6)"
        assert f"event 8 is in the log but not yet under a signed checkpoint {covered}" in err
        assert "the next one is due by" in err and "pass --sign-now" in err
        assert lotline(["checkpoint", "prove", "8", "--sign-now"]) == 0
        captured = capsys.readouterr()
        assert "checkpoint 8 signed" in captured.err
        bundle = json.loads(captured.out)
        assert (bundle["seq"], bundle["size"]) == (8, 8)
        assert lotline(["checkpoint", "prove", "3", "--sign-now"]) == 0       # covered: nothing to sign
        captured = capsys.readouterr()
        assert json.loads(captured.out)["size"] == 8 and "signed" not in captured.err
