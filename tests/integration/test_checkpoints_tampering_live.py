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

from ledger import verify as ledger_verify
from ledger.checkpoints import StoredCheckpoint
from ledger.merkle import TreeError
from ledger.notes import Checkpoint, sign_checkpoint
from ledger.writer import UnsignedHead
from lotline_verify import verify_export
from scripts import cli
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
    assert not report.ok and "signed the chain up to event 30" in report.describe()
    assert "cut off" in report.describe()
    # Hide it: drop the writer signatures above the cut and the checkpoints too, and sign the shorter log
    # with the ledger's own log key (the writer key is not needed to sign a checkpoint).
    history.attacker.execute("DELETE FROM ledger_writer_signatures WHERE seq > 25")
    history.attacker.forget_tree()
    history.log.checkpoint()
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
    with pytest.raises(UnsignedHead, match="rewritten"):
        history.supply.grow(4)                           # the writer will not sign over a rewritten chain
    history.log.checkpoint()
    report = history.log.verify()                        # and its signature names the rewrite
    assert not report.ok and "events 8..30 were rewritten" in report.describe()
    with pytest.raises(Refused, match="NOT consistent"):
        history.witness_run()
    assert history.witness.size_and_root()[0] == 30      # the witness kept what it saw
    export = history.export()
    verdict = verify_export(export, trusted=history.trusted())
    assert not verdict.ok and "two different roots for size 30" in verdict.reason
    with pytest.raises(Refused, match=r"NOT consistent|were rewritten"):
        history.witness.add_checkpoint(ExportFeed(export).request(30))  # (the export's own check also fails)
    verdict = verify_export(export)                       # without a saved checkpoint: the writer signature
    assert not verdict.ok and "events 8..30 were rewritten" in verdict.reason


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


# --- one command for the inspector: `lotline verify` checks what `checkpoint audit` checks ------------------


def lotline_verify_cli(history: History, capsys: pytest.CaptureFixture[str]) -> int:
    """`lotline verify` alone and in three processes (parts of a few events): the same output either
    way, left for capsys; its exit status."""
    runs = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ledger_verify, "PART_EVENTS", 1)
        for jobs in ("1", "3"):
            code = cli.main(["verify", "--database-url", history.url, "--log-name", ORIGIN,
                             "--keys-dir", str(history.tmp / "keys"), "--jobs", jobs])
            runs.append((code, capsys.readouterr().out))
    assert runs[0] == runs[1], "the parts walked side by side report what one walk reports"
    print(runs[0][1], end="")
    return runs[0][0]


def test_lotline_verify_passes_an_untouched_log_with_its_checkpoints_and_cosignatures(
    history: History, capsys: pytest.CaptureFixture[str]
) -> None:
    assert lotline_verify_cli(history, capsys) == 0
    assert "  2 checkpoints and 2 cosignatures verified" in capsys.readouterr().out.splitlines()


def test_lotline_verify_catches_a_truncated_tail_even_with_the_writer_signatures_cut_too(
    history: History, capsys: pytest.CaptureFixture[str]
) -> None:
    history.attacker.truncate(keep=25)
    history.attacker.execute("DELETE FROM ledger_writer_signatures WHERE seq > 25")
    assert lotline_verify_cli(history, capsys) == 1
    out = capsys.readouterr().out
    assert "checkpoint 30 was signed but the store holds only 25 events" in out or "cut off" in out


def test_lotline_verify_catches_a_fork_against_the_stored_checkpoints(
    history: History, capsys: pytest.CaptureFixture[str]
) -> None:
    # Rewrite event 13, re-chain from it and rebuild the stored tree, keeping the signed checkpoints.
    history.attacker.alter_event(13)
    history.attacker.rehash_chain(13)
    history.attacker.forget_tree(keep_checkpoints_up_to=30)
    assert lotline_verify_cli(history, capsys) == 1
    assert "differs from the signed checkpoint 20" in capsys.readouterr().out


def test_lotline_verify_catches_a_bad_cosignature(
    history: History, capsys: pytest.CaptureFixture[str]
) -> None:
    (line,) = history.attacker.execute("SELECT line FROM ledger_cosignatures WHERE size = 30")[0]
    forged = line[:-6] + ("A" if line[-6] != "A" else "B") + line[-5:]   # one signature byte changed
    history.attacker.execute("UPDATE ledger_cosignatures SET line = ? WHERE size = 30", (forged,))
    assert lotline_verify_cli(history, capsys) == 1
    assert "cosignature by" in capsys.readouterr().out
