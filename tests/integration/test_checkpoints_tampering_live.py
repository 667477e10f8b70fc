"""Tampering with the live database (SQLite and PostgreSQL): the audit, the witness and the verifier see it.

Each test builds a log of 30 events with checkpoints at 20 and 30, which a witness has cosigned,
then changes the tables behind the ledger's back, as someone with database access could.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.checkpoints import StoredCheckpoint
from ledger.merkle import TreeError
from ledger.notes import Checkpoint, sign_checkpoint
from lotline_verify import verify_export
from scripts.witness import ExportFeed, Refused
from tests.merkle_builders import ORIGIN, History, witnessed_history


@pytest.fixture
def history(database_url: str, tmp_path: Path) -> Iterator[History]:
    with witnessed_history(database_url, tmp_path) as h:
        yield h


def test_an_untouched_log_passes_the_audit_the_witness_and_the_verifier(history: History) -> None:
    report = history.log.verify()
    assert report.ok and (report.events, report.checkpoints, report.cosignatures) == (30, 2, 2)
    history.supply.grow(3)
    history.log.checkpoint()
    history.witness_run()
    verdict = verify_export(history.export(), trusted=history.trusted())
    assert verdict.ok, verdict.describe()


def test_an_altered_event_is_named(history: History) -> None:
    history.attacker.alter_event(13)
    report = history.log.verify()
    assert not report.ok and "seq 13" in report.describe() and "hash mismatch" in report.describe()
    verdict = verify_export(history.export())
    assert not verdict.ok and verdict.seq == 13 and "chain hash mismatch" in verdict.reason


def test_an_altered_event_with_a_rehashed_chain_breaks_the_signed_root(history: History) -> None:
    history.attacker.alter_event(13)
    history.attacker.rehash_chain(13)
    report = history.log.verify()
    assert not report.ok and "event 13: the stored Merkle leaf does not match" in report.describe()
    history.attacker.forget_tree(keep_checkpoints_up_to=30)   # also rebuild the tree: roots still differ
    report = history.log.verify()
    assert not report.ok and "differs from the signed checkpoint 20" in report.describe()
    verdict = verify_export(history.export())
    assert not verdict.ok and "events 1..20 are not the ones that were signed" in verdict.reason


def test_a_dropped_event_is_named(history: History) -> None:
    history.attacker.delete_event(7)
    report = history.log.verify()
    assert not report.ok and "seq 7" in report.describe() and "deleted" in report.describe()


def test_an_event_inserted_behind_the_ledger_is_found(history: History) -> None:
    stream, _version, topic, state = history.attacker.event(5)
    history.attacker.execute(
        f"INSERT INTO {history.attacker.events} (originator_id, originator_version, topic, state) "
        "VALUES (?, ?, ?, ?)", (history.attacker.key(stream), 99, topic, state))
    report = history.log.verify()
    assert not report.ok and "inserted behind the ledger" in report.describe()


def test_reordered_events_are_found(history: History) -> None:
    a, b = history.attacker.chain_row(11), history.attacker.chain_row(12)
    history.attacker.execute("DELETE FROM ledger_chain WHERE seq IN (11, 12)")
    for seq, (stream, version) in ((11, b), (12, a)):
        history.attacker.execute(
            "INSERT INTO ledger_chain (seq, originator_id, originator_version, chain_hash) "
            "VALUES (?, ?, ?, ?)", (seq, history.attacker.key(stream), version, b"\0" * 32))
    history.attacker.rehash_chain(11)   # even with the chain re-hashed, the tree and roots differ
    report = history.log.verify()
    assert not report.ok and "event 11: the stored Merkle leaf does not match" in report.describe()
    verdict = verify_export(history.export())
    assert not verdict.ok and "events 1..20 are not the ones that were signed" in verdict.reason


def test_a_truncated_tail_is_caught_by_the_audit_and_the_witness(history: History) -> None:
    history.attacker.truncate(keep=25)
    report = history.log.verify()
    assert not report.ok and "checkpoint 30" in report.describe() and "cut off" in report.describe()
    # Hide it: drop the checkpoints too and sign the shorter log with the ledger's own key.
    history.attacker.forget_tree()
    history.log.checkpoint()
    assert history.log.verify().ok                       # on its own, the store now looks fine...
    with pytest.raises(Refused, match="fewer than the 30"):
        history.witness_run()                            # ...but the witness saw 30 events
    verdict = verify_export(history.export(), trusted=history.trusted())
    assert not verdict.ok and "truncated or rolled back" in verdict.reason


def test_a_forked_history_resigned_with_the_ledgers_key_is_refused_by_witness_and_verifier(
    history: History,
) -> None:
    # Rewrite event 8, re-hash the chain, rebuild the tree, re-sign every checkpoint with our own key.
    history.attacker.alter_event(8)
    history.attacker.rehash_chain(8)
    history.attacker.forget_tree()
    history.supply.grow(4)
    history.log.checkpoint()
    assert history.log.verify().ok                       # internally consistent: only outsiders can tell
    with pytest.raises(Refused, match="NOT consistent"):
        history.witness_run()
    assert history.witness.size_and_root()[0] == 30      # the witness kept what it saw
    export = history.export()
    verdict = verify_export(export, trusted=history.trusted())
    assert not verdict.ok and "events 1..30 are not the ones that were signed" in verdict.reason
    with pytest.raises(Refused, match="NOT consistent"):
        history.witness.add_checkpoint(ExportFeed(export).request(30))
    assert verify_export(export).ok                       # without a saved checkpoint, nothing to compare


def test_a_checkpoint_signed_by_an_unknown_key_fails_the_audit(history: History) -> None:
    history.supply.grow(2)
    history.log.sync()
    stranger = Ed25519PrivateKey.generate()
    head = Checkpoint(ORIGIN, 32, history.log.tree.root(32))
    note = sign_checkpoint(head, ORIGIN, stranger).render()
    with history.log.engine.begin() as conn:
        history.log.checkpoints.add(conn, StoredCheckpoint(32, ORIGIN, head.root, "00000000", note,
                                                           datetime.now(UTC).isoformat()))
    report = history.log.verify()
    assert not report.ok and "checkpoint 32: no signature by a known log key" in report.describe()
    with pytest.raises(Refused, match="log signature"):
        history.witness_run()
    verdict = verify_export(history.export())
    assert not verdict.ok and "checkpoint 32: not signed by any known log key" in verdict.reason


def test_the_tree_is_not_extended_over_a_tampered_chain(history: History) -> None:
    history.supply.grow(3)
    history.attacker.alter_event(32)
    with pytest.raises(TreeError, match="event 32"):
        history.log.checkpoint()
    assert history.log.latest() is not None and history.log.latest().size == 30


def test_a_log_that_re_signs_the_same_size_with_another_root_is_caught_as_a_fork(history: History) -> None:
    history.attacker.alter_event(3)
    history.attacker.rehash_chain(3)
    history.attacker.forget_tree()
    assert history.log.checkpoint().size == 30                # same size as the witness saw, other root
    with pytest.raises(Refused, match="NOT consistent"):
        history.witness_run()
    verdict = verify_export(history.export(), trusted=history.trusted())
    assert not verdict.ok and "signed two different roots for size 30" in verdict.reason
