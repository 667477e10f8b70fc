"""Checkpoints on SQLite and PostgreSQL: keys and rotation, signing policy, cosignatures, proof bundles."""

from __future__ import annotations

import json
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ledger.checkpoints import CheckpointNotFound
from ledger.errors import InvalidInput
from ledger.keys import SigningKeyError
from ledger.merkle import verify_consistency, verify_inclusion
from ledger.notes import Signature, VerifierKey, parse_checkpoint, parse_note
from ledger.transparency import CosignatureRefused, NotYetCheckpointed
from lotline_verify import Invalid, verify_bundle
from lotline_verify.notes import Key
from scripts.witness import DatabaseFeed, Refused, Witness
from tests.merkle_builders import ORIGIN, supply_log


def test_keys_live_in_private_files_and_in_the_store(database_url: str, tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys"
    with supply_log(database_url, keys_dir) as (_, log):
        key = log.keys.generate()
        private = keys_dir / f"{key.key_id}.key"
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
        assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700
        assert private.read_text().startswith(f"PRIVATE+KEY+{ORIGIN}+{key.key_id}+")
        assert (keys_dir / f"{key.key_id}.vkey").read_text().strip() == key.vkey
        assert [k.key_id for k in log.keys.all()] == [key.key_id]
        with pytest.raises(SigningKeyError, match="already active"):
            log.keys.generate()
        private.unlink()
        with pytest.raises(SigningKeyError, match="not in"):
            log.checkpoint()


def test_old_checkpoints_still_verify_after_a_key_rotation(database_url: str, tmp_path: Path) -> None:
    with supply_log(database_url, tmp_path / "keys", events=10) as (supply, log):
        first = log.keys.generate()
        before = log.checkpoint().checkpoint
        retired, new = log.keys.rotate()
        assert retired is not None and retired.key_id == first.key_id and retired.valid_until is not None
        supply.grow(5)
        after = log.checkpoint().checkpoint
        assert (before.key_id, after.key_id) == (first.key_id, new.key_id)
        assert log.keys.active() == new
        report = log.verify()
        assert report.ok, report.describe()
        assert report.checkpoints == 2


def test_checkpoints_on_demand_sign_the_head_once(database_url: str, tmp_path: Path) -> None:
    with supply_log(database_url, tmp_path / "keys", events=12) as (supply, log):
        log.keys.generate()
        view = log.checkpoint()
        assert view.size == 12
        assert log.checkpoint().checkpoint == view.checkpoint   # nothing new: the same checkpoint
        head = parse_checkpoint(parse_note(view.note()).text)
        assert (head.origin, head.size, head.root) == (ORIGIN, 12, log.tree.root(12))
        supply.grow(3)
        assert log.checkpoint().size == 15
        assert [v.size for v in log.list_checkpoints()] == [15, 12]
        assert log.get(12).checkpoint == view.checkpoint
        with pytest.raises(CheckpointNotFound):
            log.get(13)


def test_a_checkpoint_is_due_after_n_events_or_t_seconds(database_url: str, tmp_path: Path) -> None:
    with supply_log(database_url, tmp_path / "keys", events=3,
                    checkpoint_every_events=5, checkpoint_every_seconds=60) as (supply, log):
        log.keys.generate()
        assert log.maybe_checkpoint() is not None        # the first events get a checkpoint at once
        assert log.maybe_checkpoint() is None            # nothing new
        supply.grow(4)
        assert log.maybe_checkpoint() is None            # 4 new events, not yet 5, not yet 60 s
        later = datetime.now(UTC) + timedelta(seconds=61)
        made = log.maybe_checkpoint(now=later)           # ...but a minute later they are signed
        assert made is not None and made.size == 7
        supply.grow(5)
        made = log.maybe_checkpoint()                     # 5 new events: signed at once
        assert made is not None and made.size == 12


def test_watch_signs_by_the_policy_until_stopped(database_url: str, tmp_path: Path) -> None:
    with supply_log(database_url, tmp_path / "keys", events=4, checkpoint_every_events=2) as (supply, log):
        log.keys.generate()
        stop = threading.Event()
        watcher = threading.Thread(target=log.watch, args=(stop, 0.05))
        watcher.start()
        try:
            supply.grow(6)
            deadline = datetime.now(UTC) + timedelta(seconds=20)
            # By the policy at most one of the 10 events stays unsigned: a poll that lands between
            # two writes may sign 9, and then 1 new event is not yet due.
            while (latest := log.latest()) is None or latest.size < 9:
                assert datetime.now(UTC) < deadline, "no checkpoint of the new events"
                stop.wait(0.05)
        finally:
            stop.set()
            watcher.join()


def test_a_witness_cosignature_is_stored_and_shown_with_its_checkpoint(
    database_url: str, tmp_path: Path
) -> None:
    with supply_log(database_url, tmp_path / "keys", events=9) as (supply, log):
        key = log.keys.generate()
        log.checkpoint()
        witness = Witness.init(tmp_path / "w.json", "inspector.test/w1", ORIGIN, [key.vkey])
        feed = DatabaseFeed(database_url)
        try:
            accepted = witness.add_checkpoint(feed.request(0))
            feed.submit(accepted.cosigned_note, witness.key)
            supply.grow(4)
            log.checkpoint()
            accepted = witness.add_checkpoint(feed.request(9))
            feed.submit(accepted.cosigned_note, witness.key)
        finally:
            feed.close()
        view = log.get(13)
        assert [c.witness for c in view.cosignatures] == ["inspector.test/w1"]
        note = view.note()
        assert note == accepted.cosigned_note
        assert note.count("\u2014 ") == 2 and note.splitlines()[-1].startswith("\u2014 inspector.test/w1 ")
        assert log.verify().cosignatures == 2


def test_the_ledger_refuses_cosignatures_that_do_not_verify(database_url: str, tmp_path: Path) -> None:
    with supply_log(database_url, tmp_path / "keys", events=5) as (_, log):
        key = log.keys.generate()
        stored = log.checkpoint().checkpoint
        witness = Witness.init(tmp_path / "w.json", "inspector.test/w1", ORIGIN, [key.vkey])
        wkey = VerifierKey(witness.key.name, witness.key.sig_type, witness.key.public_key)
        line = witness._cosign(parse_note(stored.note).text, 1_700_000_000)
        # a cosignature of a different root for the same size: the witness saw another tree
        other = stored.note.replace(stored.note.split("\n")[2], "A" * 43 + "=")
        with pytest.raises(CosignatureRefused, match="different tree head"):
            log.add_cosignature(other + line, wkey)
        # a cosignature whose time was changed after signing
        sig = parse_note("x\n\n" + line).signatures[0]
        forged = Signature(sig.name, sig.key_id, (1_700_000_001).to_bytes(8, "big") + sig.blob[8:]).line()
        with pytest.raises(CosignatureRefused, match="does not verify"):
            log.add_cosignature(stored.note + forged, wkey)
        with pytest.raises(CosignatureRefused, match="no cosignature by"):
            log.add_cosignature(stored.note, wkey)
        assert log.add_cosignature(stored.note + line, wkey).timestamp == 1_700_000_000
        assert log.add_cosignature(stored.note + line, wkey).timestamp == 1_700_000_000  # idempotent
        assert len(log.get(5).cosignatures) == 1


def test_proofs_served_from_the_store_verify(database_url: str, tmp_path: Path) -> None:
    with supply_log(database_url, tmp_path / "keys", events=21) as (supply, log):
        log.keys.generate()
        old = log.checkpoint().checkpoint
        supply.grow(10)
        new = log.checkpoint().checkpoint
        for seq in (1, 7, 21, 31):
            p = log.inclusion_proof(seq)
            assert p.size == 31 and verify_inclusion(seq - 1, 31, p.leaf_hash, p.path, new.root)
        c = log.consistency_proof(old.size)
        assert verify_consistency(21, 31, old.root, new.root, c.path)


def test_a_proof_bundle_is_checked_alone_by_the_offline_verifier(database_url: str, tmp_path: Path) -> None:
    with supply_log(database_url, tmp_path / "keys", events=17) as (_, log):
        key = log.keys.generate()
        log.checkpoint()
        bundle = json.loads(json.dumps(log.proof_bundle(6)))
        trusted = [Key(key.name, 1, key.public_key)]
        assert "event 6 is in lotline.test/log at size 17" in verify_bundle(bundle, trusted)
        forged = dict(bundle, event=bundle["event"].replace('"name":"', '"name":"X', 1))
        with pytest.raises(Invalid, match="inclusion proof fails"):
            verify_bundle(forged, trusted)
        with pytest.raises(Invalid, match="known log key"):
            verify_bundle(bundle, [Key(key.name, 1, bytes(32))])


def test_a_witness_refuses_a_log_it_does_not_know(database_url: str, tmp_path: Path) -> None:
    with supply_log(database_url, tmp_path / "keys", events=3) as (_, log):
        log.keys.generate()
        log.checkpoint()
        stranger = "lotline.test/log+00000000+AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        with pytest.raises(Invalid):
            Witness.init(tmp_path / "w.json", "inspector.test/w1", ORIGIN, [stranger])
        other = log.keys.rotate()[1]
        witness = Witness.init(tmp_path / "w2.json", "inspector.test/w1", ORIGIN, [other.vkey])
        with pytest.raises(Refused, match="log signature"):
            witness.add_checkpoint(log.witness_request(0).body())


def test_an_event_not_yet_under_a_checkpoint_says_when_the_next_one_is_due(
    database_url: str, tmp_path: Path
) -> None:
    policy = {"checkpoint_every_events": 5, "checkpoint_every_seconds": 300, "checkpoint_poll_seconds": 5}
    with supply_log(database_url, tmp_path / "keys", events=10, **policy) as (supply, log):
        # without a signing key no checkpoint will come: no time to wait for
        with pytest.raises(NotYetCheckpointed, match="until the log has a signing key") as no_key:
            log.inclusion_proof(3)
        assert no_key.value.retry_after is None and no_key.value.details["next_checkpoint_by"] is None
        log.keys.generate()
        # the first events get a checkpoint at the watcher's next poll
        with pytest.raises(NotYetCheckpointed, match="no checkpoint has been signed yet") as first:
            log.proof_bundle(3)
        assert first.value.retry_after is not None and first.value.retry_after <= 5
        signed = log.checkpoint().checkpoint
        supply.grow(2)
        # fewer than 5 events wait: due 300 s after the newest checkpoint (plus one poll)
        with pytest.raises(NotYetCheckpointed, match=r"event 12 is in the log but not yet under a signed "
                           r"checkpoint \(the newest covers events 1\.\.10\): the next one is due by .*"
                           r"every 5 events, or 300 s after the last checkpoint.*`lotline checkpoint make`"
                           ) as waiting:
            log.inclusion_proof(12)
        assert waiting.value.details | {"next_checkpoint_by": None} == {
            "seq": 12, "checkpoint_size": 10, "log_size": 12, "next_checkpoint_by": None}
        assert waiting.value.retry_after is not None and 290 < waiting.value.retry_after <= 305
        made = datetime.fromisoformat(signed.created_at)
        assert log.next_checkpoint_due(made) == made + timedelta(seconds=305)
        assert log.next_checkpoint_due(made + timedelta(hours=1)) == made + timedelta(hours=1, seconds=5)
        # covered events are proven against the newest checkpoint; events not in the log are another error
        assert log.inclusion_proof(10).size == log.proof_bundle(10)["size"] == 10
        with pytest.raises(InvalidInput, match="event 13 is not in the log, which holds 12 events"):
            log.inclusion_proof(13)
        # 5 events waiting: due at the next poll
        supply.grow(3)
        with pytest.raises(NotYetCheckpointed) as many:
            log.inclusion_proof(15)
        assert many.value.retry_after is not None and many.value.retry_after <= 5
        log.checkpoint()
        assert log.inclusion_proof(15).size == 15
