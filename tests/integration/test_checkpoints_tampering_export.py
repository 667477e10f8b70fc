"""Tampering with an audit export: `lotline-verify` names the first bad event or the broken promise.

The export comes from a log of 30 events with checkpoints at 20 and 30 that a witness cosigned;
each test edits the files as someone handing over a doctored export could.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.export import write_export
from ledger.notes import ED25519, VerifierKey, parse_checkpoint, parse_note, public_bytes, sign_checkpoint
from lotline_verify import export as export_walk
from lotline_verify import parse_vkey, verify_export
from lotline_verify.__main__ import main as lotline_verify
from tests.merkle_builders import ORIGIN, History, witnessed_history


@pytest.fixture(autouse=True, params=[1, 3, 7], ids=["whole", "3-parts", "7-parts"])
def walkers(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every verdict is the same whether one process walks the events or several walk parts of them
    side by side (cut every few events here, so the cuts fall before, on and after the edited lines)."""
    monkeypatch.setattr(export_walk, "DEFAULT_JOBS", request.param)
    monkeypatch.setattr(export_walk, "_PART_BYTES", 1)


@pytest.fixture
def history(database_url: str, tmp_path: Path) -> Iterator[History]:
    with witnessed_history(database_url, tmp_path) as h:
        yield h


@pytest.fixture
def export(history: History) -> Path:
    return history.export()


def read(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def write(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(lines))


def edit_manifest(export: Path, **changes: object) -> None:
    m = json.loads((export / "manifest.json").read_text())
    m.update(changes)
    (export / "manifest.json").write_text(json.dumps(m))


def split(line: bytes) -> tuple[bytes, bytes]:
    cut = line.index(b',"event":')
    return line[:cut], line[cut + 9 : -2]


def rehash(lines: list[bytes], start: int) -> list[bytes]:
    """Recompute chain hashes from line `start` (0-based) on, as a careful forger would."""
    prev = bytes.fromhex(json.loads(split(lines[start - 1])[0] + b"}")["chain_hash"]) if start else bytes(32)
    out = lines[:start]
    for line in lines[start:]:
        header, event = split(line)
        prev = hashlib.sha256(prev + event).digest()
        h = json.loads(header + b"}")
        out.append(b'{"seq":%d,"stream":"%s","version":%d,"chain_hash":"%s","event":%s}\n' % (
            h["seq"], h["stream"].encode(), h["version"], prev.hex().encode(), event))
    return out


def test_an_intact_export_verifies_with_the_witness_checkpoint(export: Path, history: History) -> None:
    verdict = verify_export(export, trusted=history.trusted(), strict=True)
    assert verdict.ok, verdict.describe()
    assert (verdict.events, verdict.checkpoints) == (30, 2)
    assert verdict.cosigned == {"inspector.test/w1": 30}
    assert "OK" in verdict.describe() and not verdict.warnings


def test_the_command_line_exits_0_then_1(
    export: Path, history: History, capsys: pytest.CaptureFixture[str]
) -> None:
    trusted = history.tmp / "trusted.txt"
    trusted.write_text(history.trusted())
    assert lotline_verify([str(export), "--trusted", str(trusted), "--quiet"]) == 0
    assert "lotline-verify: OK" in capsys.readouterr().out
    lines = read(export / "events.jsonl")
    lines[4] = lines[4].replace(b'"name":"', b'"name":"X', 1)
    write(export / "events.jsonl", lines)
    assert lotline_verify([str(export), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "at event 5" in out and "chain hash mismatch" in out


@pytest.mark.parametrize("jobs", [1, 4])
def test_the_command_line_walks_in_as_many_processes_as_asked(
    export: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, jobs: int
) -> None:
    cut, made = export_walk._parts, []
    monkeypatch.setattr(export_walk, "_parts", lambda *a: made.append(cut(*a)) or made[-1])
    lines = read(export / "events.jsonl")
    lines[21] = lines[21].replace(b'"name":"', b'"name":"X', 1)
    write(export / "events.jsonl", lines)
    assert lotline_verify([str(export), "--quiet", "--jobs", str(jobs)]) == 1
    assert "at event 22" in capsys.readouterr().out
    assert [len(parts) for parts in made] == [jobs]
    with pytest.raises(SystemExit):
        lotline_verify([str(export), "--jobs", "0"])
    assert "not a number of processes from 1 to 64" in capsys.readouterr().err


def test_a_trusted_checkpoint_saved_with_a_final_newline_verifies_and_json_is_explained(
    export: Path, history: History, capsys: pytest.CaptureFixture[str]
) -> None:
    trusted = history.tmp / "trusted.txt"
    trusted.write_text(history.trusted() + "\n")            # e.g. print(note) or `jq -r .note`
    assert lotline_verify([str(export), "--trusted", str(trusted), "--quiet"]) == 0
    assert "trusted      your checkpoint of size 30" in capsys.readouterr().out
    answer = {"size": 30, "origin": ORIGIN, "note": history.trusted(), "cosignatures": []}
    trusted.write_text(json.dumps(answer))                  # GET /inspector/checkpoints/latest, saved
    assert lotline_verify([str(export), "--trusted", str(trusted), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "your trusted checkpoint: this is JSON" in out and "the text of its `note` field" in out


def test_an_altered_event_is_named(export: Path) -> None:
    lines = read(export / "events.jsonl")
    lines[16] = lines[16].replace(b'"name":"', b'"name":"Mallory ', 1)
    write(export / "events.jsonl", lines)
    verdict = verify_export(export)
    assert not verdict.ok and verdict.seq == 17 and "chain hash mismatch" in verdict.reason
    assert verdict.events == 16


def test_an_altered_event_with_rehashed_chain_fails_the_signed_root(export: Path) -> None:
    lines = read(export / "events.jsonl")
    lines[16] = lines[16].replace(b'"name":"', b'"name":"Mallory ', 1)
    write(export / "events.jsonl", rehash(lines, 16))
    verdict = verify_export(export)
    assert not verdict.ok
    assert "signed checkpoint 20: events 1..20 are not the ones that were signed" in verdict.reason


def test_an_event_whose_own_stream_or_version_disagrees_with_its_line_is_named(export: Path) -> None:
    # Without --strict the verifier reads seq, stream and version from the event's last members, not
    # by parsing it: an edit there, its chain re-hashed, is still named at its line.
    lines = read(export / "events.jsonl")
    header, event = split(lines[16])
    version = json.loads(event)["version"]
    forged = event.replace(b',"version":%d}' % version, b',"version":%d}' % (version + 1))
    assert forged != event
    lines[16] = header + b',"event":' + forged + b"}\n"
    write(export / "events.jsonl", rehash(lines, 16))   # the line keeps its version, the hash is redone
    for strict in (False, True):
        verdict = verify_export(export, strict=strict)
        assert not verdict.ok and verdict.seq == 17
        assert "disagree with its event" in verdict.reason


def test_an_event_that_is_not_json_but_ends_like_one_is_refused(export: Path) -> None:
    lines = read(export / "events.jsonl")
    header, event = split(lines[16])
    lines[16] = header + b',"event":{' + event + b"}\n"   # an unclosed brace: not JSON, same last members
    write(export / "events.jsonl", rehash(lines, 16))
    # Without --strict the event is not parsed: its hashes no longer match what was signed.
    verdict = verify_export(export)
    assert not verdict.ok and "signed checkpoint 20: events 1..20 are not the ones" in verdict.reason
    verdict = verify_export(export, strict=True)
    assert not verdict.ok and verdict.seq == 17 and "not valid canonical JSON" in verdict.reason


def test_a_dropped_event_is_named(export: Path) -> None:
    lines = read(export / "events.jsonl")
    del lines[9]
    write(export / "events.jsonl", lines)
    verdict = verify_export(export)
    assert not verdict.ok and verdict.seq == 10 and "found event 11" in verdict.reason


def test_an_inserted_event_is_named(export: Path) -> None:
    lines = read(export / "events.jsonl")
    lines.insert(10, lines[9])
    write(export / "events.jsonl", lines)
    verdict = verify_export(export)
    assert not verdict.ok and verdict.seq == 11 and "found event 10" in verdict.reason
    lines = read(export / "events.jsonl")
    del lines[10]
    lines.append(lines[-1])                                   # a 31st line the manifest does not list
    write(export / "events.jsonl", lines)
    verdict = verify_export(export)
    assert not verdict.ok and verdict.seq == 31 and "inserted" in verdict.reason


def test_reordered_events_are_named(export: Path) -> None:
    lines = read(export / "events.jsonl")
    lines[11], lines[12] = lines[12], lines[11]
    write(export / "events.jsonl", lines)
    verdict = verify_export(export)
    assert not verdict.ok and verdict.seq == 12 and "out of order" in verdict.reason


def test_a_truncated_tail_is_caught_by_the_checkpoints_or_the_trusted_checkpoint(
    export: Path, history: History
) -> None:
    write(export / "events.jsonl", read(export / "events.jsonl")[:25])
    edit_manifest(export, last_seq=25)
    verdict = verify_export(export)
    assert not verdict.ok and "checkpoint 30 was signed for 30 events" in verdict.reason
    # Drop the later checkpoint and its cosignature too: only a saved checkpoint can tell now.
    write(export / "checkpoints.jsonl", read(export / "checkpoints.jsonl")[:1])
    write(export / "cosignatures.jsonl", read(export / "cosignatures.jsonl")[:1])
    assert verify_export(export).ok
    verdict = verify_export(export, trusted=history.trusted())
    assert not verdict.ok and "shows only 25: the log was truncated or rolled back" in verdict.reason


def test_a_truncated_file_without_an_edited_manifest_is_caught(export: Path) -> None:
    write(export / "events.jsonl", read(export / "events.jsonl")[:28])
    verdict = verify_export(export)
    assert not verdict.ok and "the tail was cut off" in verdict.reason


def test_a_checkpoint_signed_by_an_unknown_key_is_refused(export: Path) -> None:
    rows = [json.loads(line) for line in read(export / "checkpoints.jsonl")]
    stranger = Ed25519PrivateKey.generate()
    head = parse_checkpoint(parse_note(rows[1]["note"]).text)
    rows[1]["note"] = sign_checkpoint(head, ORIGIN, stranger).render()
    write(export / "checkpoints.jsonl", [json.dumps(r).encode() + b"\n" for r in rows])
    (export / "cosignatures.jsonl").write_text("")
    verdict = verify_export(export)
    assert not verdict.ok and "checkpoint 30: not signed by any known log key" in verdict.reason
    # Slipping the stranger's key into keys.jsonl fools nobody who pins the log's real key.
    real = json.loads(read(export / "keys.jsonl")[0])["vkey"]
    fake = VerifierKey(ORIGIN, ED25519, public_bytes(stranger))
    with open(export / "keys.jsonl", "a") as f:
        f.write(json.dumps({
            "name": ORIGIN, "key_id": fake.key_id.hex(), "public_key": _b64(fake.public_key),
            "vkey": fake.encode(), "valid_from": "2000-01-01T00:00:00+00:00", "valid_until": None,
        }) + "\n")
    rows[1]["key_id"] = fake.key_id.hex()
    write(export / "checkpoints.jsonl", [json.dumps(r).encode() + b"\n" for r in rows])
    assert verify_export(export).ok
    verdict = verify_export(export, log_keys=[parse_vkey(real)])
    assert not verdict.ok and "checkpoint 30: not signed by any known log key" in verdict.reason


def test_a_forged_cosignature_is_refused(export: Path) -> None:
    rows = [json.loads(line) for line in read(export / "cosignatures.jsonl")]
    rows[0]["size"] = 30                                  # claim the witness cosigned another head
    write(export / "cosignatures.jsonl", [json.dumps(r).encode() + b"\n" for r in rows])
    verdict = verify_export(export)
    assert not verdict.ok and "cosignature by inspector.test/w1 does not verify" in verdict.reason


def test_a_range_export_verifies_against_the_checkpoints_that_cover_it(history: History) -> None:
    write_export(history.log, history.tmp / "range", first=12, last=24)
    verdict = verify_export(history.tmp / "range")
    assert verdict.ok, verdict.describe()
    assert verdict.events == 13 and "checked for their signature only" not in " ".join(verdict.warnings)
    lines = read(history.tmp / "range" / "events.jsonl")
    lines[3] = lines[3].replace(b'"name":"', b'"name":"X', 1)
    write(history.tmp / "range" / "events.jsonl", rehash(lines, 3))
    verdict = verify_export(history.tmp / "range")
    assert not verdict.ok and "events 12..20 are not the ones" in verdict.reason


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_cosignatures_by_witnesses_the_inspector_does_not_trust_are_reported_as_such(
    export: Path, history: History
) -> None:
    trusted = verify_export(export, witness_keys=[history.witness.key])
    assert trusted.cosigned == {"inspector.test/w1": 30}
    stranger = VerifierKey("inspector.test/w1", 0x04, public_bytes(Ed25519PrivateKey.generate()))
    other = verify_export(export, witness_keys=[parse_vkey(stranger.encode())])
    assert other.ok and list(other.cosigned) == [
        f"inspector.test/w1 (key {history.witness.key.id.hex()}, not one you trust)"]
